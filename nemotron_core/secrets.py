"""What counts as a secret, and how it is kept out of everything written.

Two rules, because environment variables and config keys are named differently:
- An environment variable whose name contains KEY / TOKEN / SECRET / PASSWORD (any case)
  is a secret (`is_secret_name`): WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY. It reaches
  jobs only through a 0600 env file, never sbatch text, job.yaml or logs. Erring broad is
  cheap there (TOKENIZERS_PARALLELISM simply travels through the secrets file too).
- A config or profile key is a secret (`is_secret_key`) when one of its words is
  token/secret/password/credential(s), or it is `key`/`*_key` after api/access/private/
  secret/auth/signing/encryption (`api_key`, `hf_token`, `db.password`). Word-based, so
  `tokenizer_path`, `max_tokens` and `content_key` are ordinary keys. Keys ending in `_env`
  hold the *name* of an environment variable (`api_key_env = "WANDB_API_KEY"`), not a secret.
Values of secret keys are redacted in job.yaml, displays and Prefect parameters.

A *value* is secret when it is the value of a secret environment variable: one named like
a secret, or one an env.toml profile declares (`secrets = ["DB_PASS"]`, `api_key_env`),
whatever its name. `declare_secret_names` records the declared names (env.toml loading
does it for every profile), `secret_values` lists the values present in this process's
environment, and `redact_text` replaces them in any text; every NemotronError message
goes through it, so an error can never echo a token.

Login files (`login_secrets`): like the seed, the HF token and the W&B key are also picked up
from the tools' own logins when the environment does not set them — `HF_TOKEN` from
`$HF_TOKEN_PATH`, `$HF_HOME/token` or `~/.cache/huggingface/token` (what `huggingface-cli login`
writes), `WANDB_API_KEY` from the `api.wandb.ai` entry of `$NETRC` / `~/.netrc` (what `wandb login`
writes). They travel like any secret (secrets.env only) and their values are redacted too.
"""

from __future__ import annotations

import netrc
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REDACTED = "***REDACTED***"
_SECRET = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_REFERENCE_SUFFIXES = ("_env", "_var", "_env_var")


def is_secret_name(name: str) -> bool:
    name = str(name)
    return bool(_SECRET.search(name)) and not name.lower().endswith(_REFERENCE_SUFFIXES)


_SECRET_WORDS = {"token", "secret", "password", "passwd", "credential", "credentials", "apikey", "pat"}
_KEY_QUALIFIERS = {"api", "access", "private", "secret", "auth", "signing", "encryption", "wandb", "hf"}


def _words(name: str) -> list[str]:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))  # camelCase -> camel_Case
    return [w for w in re.split(r"[^A-Za-z0-9]+", name.lower()) if w]


#: `eos_token_id`, `pad_token`, `token_count`: a token *of a tokenizer*, or a number about
#: one, is an ordinary value (an id or a count is never the credential itself).
_TOKENIZER_WORDS = {"pad", "bos", "eos", "unk", "sep", "cls", "mask", "special"}
_NOT_SECRET_LAST = {"id", "ids", "count", "len", "length", "size", "limit", "num", "type"}


def is_secret_key(name: str) -> bool:
    """Is this config/profile key's value a secret? (word-based; see module docstring)"""
    if str(name).lower().endswith(_REFERENCE_SUFFIXES):
        return False
    words = _words(name)
    if len(words) > 1 and words[-1] in _NOT_SECRET_LAST:
        return False
    if any(w == "token" and i > 0 and words[i - 1] in _TOKENIZER_WORDS for i, w in enumerate(words)):
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    return words == ["key"] or any(w == "key" and i > 0 and words[i - 1] in _KEY_QUALIFIERS
                                   for i, w in enumerate(words))


def redact(obj: Any) -> Any:
    """A copy of a nested dict/list with the values of secret-named keys replaced."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(k) and v not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- secret values

#: Shorter values are not redacted in text: "1" or "true" would garble every message.
MIN_SECRET_LEN = 6
_declared: set[str] = set()


def declare_secret_names(names: Iterable[str]) -> None:
    """Treat these environment variables as secrets (env.toml `secrets`, `api_key_env`).

    Replaces the previous declaration: the names are those of the env.toml loaded last
    (one per CLI or flow process; tests load many).
    """
    _declared.clear()
    _declared.update(str(n) for n in names if n)


def secret_env_names(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> set[str]:
    """Names of the secret variables: named like one in `environ`, declared, or in `extra`."""
    env = os.environ if environ is None else environ
    return {k for k in env if is_secret_name(k)} | _declared | {str(n) for n in extra}


def secret_values(environ: Mapping[str, str] | None = None, extra: Iterable[str] = (),
                  min_len: int = MIN_SECRET_LEN) -> dict[str, str]:
    """{value: name} of every secret variable set in `environ` (default: this process's, plus the
    values picked up from login files)."""
    env = os.environ if environ is None else environ
    values = {env[n]: n for n in sorted(secret_env_names(env, extra)) if len(env.get(n) or "") >= min_len}
    if environ is None:
        values.update({v: n for n, v in login_secrets().items() if len(v) >= min_len and v not in values})
    return values


# --------------------------------------------------------------------------- login files

HF_TOKEN = "HF_TOKEN"
WANDB_API_KEY = "WANDB_API_KEY"
WANDB_HOST = "api.wandb.ai"
_MAX_LOGIN_FILE = 64 * 1024  # a token file or a netrc is a few lines


def _read_small_file(path: Path) -> str | None:
    """A regular file's text (a fifo or device is never opened for reading: it could block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_LOGIN_FILE:
            return None
        return os.read(fd, _MAX_LOGIN_FILE).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def hf_token_files(environ: Mapping[str, str]) -> list[Path]:
    """Where huggingface_hub keeps the token, in its own order of preference."""
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    files = [Path(environ["HF_TOKEN_PATH"])] if environ.get("HF_TOKEN_PATH") else []
    if environ.get("HF_HOME"):
        files.append(Path(environ["HF_HOME"]) / "token")
    files.append(home / ".cache" / "huggingface" / "token")
    return files


def _wandb_netrc_key(environ: Mapping[str, str]) -> str | None:
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    path = Path(environ["NETRC"]) if environ.get("NETRC") else home / ".netrc"
    text = _read_small_file(path)  # regular and small, else skipped (netrc() would block on a fifo)
    if text is None or WANDB_HOST not in text:
        return None
    try:
        parsed = netrc.netrc(str(path))
    except (netrc.NetrcParseError, OSError, UnicodeDecodeError):
        return None  # a netrc we cannot read is the W&B tool's problem, not a reason to fail a job
    entry = parsed.hosts.get(WANDB_HOST)
    return entry[2] if entry and entry[2] else None


def login_secrets(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """{HF_TOKEN, WANDB_API_KEY}: those the environment lacks, read from the tools' login files."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    if not env.get(HF_TOKEN) and not env.get("HUGGING_FACE_HUB_TOKEN"):
        for path in hf_token_files(env):
            token = (_read_small_file(path) or "").strip()
            if token and "\n" not in token:
                found[HF_TOKEN] = token
                break
    if not env.get(WANDB_API_KEY):
        key = _wandb_netrc_key(env)
        if key:
            found[WANDB_API_KEY] = key
    return found


def redact_text(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every secret value of the environment replaced by REDACTED."""
    values = secret_values(environ)
    for value in sorted(values, key=len, reverse=True):  # longest first: one secret may contain another
        if value in text:
            text = text.replace(value, REDACTED)
    return text
