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
"""

from __future__ import annotations

import re
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


def is_secret_key(name: str) -> bool:
    """Is this config/profile key's value a secret? (word-based; see module docstring)"""
    if str(name).lower().endswith(_REFERENCE_SUFFIXES):
        return False
    words = _words(name)
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
