"""job.yaml (what ran, where, from what) and train.yaml (what the script reads).

job.yaml = the resolved train config + a `run` section: the config's own `run:` (artifact aliases,
env; see run_section.py) and beside it the provenance, under names a config may not use:
    run.mode        local | run (attached) | batch (detached)
    run.profile     name, chain and the resolved profile (secret values redacted)
    run.cli         argv, dotlist, passthrough, config
    run.recipe      name, script, runspec digest
    run.git         commit, dirty
    run.artifacts   every ${art:} reference and the version it pinned
    run.mounts      ${auto_mount:} host:container pairs
    run.repos       ${auto_mount:git+URL@REF} checkouts {url, ref, path, target}, cloned at submit time
    run.created, run.version
train.yaml = job.yaml without `run`; for remote runs, local paths under the code root
are rewritten to the job's remote workdir.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets as _secrets
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nemotron_core import __version__
from nemotron_core.config.bounds import check_interpolations
from nemotron_core.config.resolvers import PendingCheck, resolution_scope
from nemotron_core.config.run_section import aliases, apply_run_env, user_run
from nemotron_core.config.secret_refs import check_secret_values, hide_secret_keys, keep_secret_reads, put_back
from nemotron_core.errors import ConfigError, NemotronError, find_cause
from nemotron_core.paths import state_dir
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec
from nemotron_core.secrets import secret_env_names, secret_values

MODES = ("local", "run", "batch")
#: A written value equal to a secret this long or longer refuses the run (shorter ones, such
#: as TOKENIZERS_PARALLELISM=false, would match ordinary words and paths).
SCAN_MIN_LEN = 8


def git_info(path: Path) -> dict[str, Any]:
    """Commit and dirty flag of the repo holding `path` (None when not in a git repo)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def resolve_train_config(train: DictConfig, *, remote: bool = False, secret_names: Iterable[str] = (),
                         pending: PendingCheck | None = None,
                         aliases: dict[str, str] | None = None, git_cache: str | None = None) -> tuple[Any, Any]:
    """Resolve all interpolations, except those that read a secret.

    Kept unresolved (as written), for the job to resolve from its environment:
    - interpolations under secret-named keys (`api_key: ${oc.env:WANDB_API_KEY}`);
    - any value whose resolution reads a secret variable through `oc.env`, however nested
      (`${oc.decode:${oc.env:DB_PASS}}`, `"postgres://u:${oc.env:DB_PASS}@db"`): a variable
      named like a secret, declared by the profile (`secret_names`), or declared in env.toml.
    Literal values under secret-named keys, and any value equal to a secret variable's
    value, are refused. Returns (plain dict, Resolution with pinned artifacts and mounts).
    """
    raw = OmegaConf.to_container(train, resolve=False)
    check_interpolations(raw)  # reference chains, cycles and string bombs: refused before resolving
    kept: dict[tuple, str] = {}
    cfg = OmegaConf.create(hide_secret_keys(raw, "", False, kept))
    names = secret_env_names(extra=secret_names)
    with resolution_scope(remote=remote, secret_names=names, pending=pending, aliases=aliases,
                          git_cache=git_cache) as res:
        try:
            plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except NemotronError:
            raise
        except RecursionError:
            raise ConfigError("config: interpolations nest too deeply (a chain or cycle of ${...} references); "
                              "shorten the chain") from None
        except Exception as e:  # omegaconf's interpolation / missing-value errors
            cause = find_cause(e)
            key = getattr(e, "full_key", None)
            if isinstance(cause, ConfigError) and key and f"'{key}'" not in str(cause):
                raise ConfigError(f"config key '{key}': {cause}") from None
            if cause:
                raise cause from None
            first = str(e).splitlines()[0]
            raise ConfigError(f"config key '{key}': {first}" if key else f"config: {first}") from None
    if res.secrets_read:
        plain = keep_secret_reads(raw, plain, "", (), kept)
    check_secret_values(plain, secret_values(extra=secret_names, min_len=SCAN_MIN_LEN))
    put_back(plain, kept)
    return plain, res


def build_job_config(train: DictConfig, *, spec: Runspec, mode: str = "local", profile: Profile | None = None,
                     argv: Sequence[str] = (), dotlist: Sequence[str] = (), passthrough: Sequence[str] = (),
                     config_name: str | None = None, remote: bool | None = None,
                     pending: PendingCheck | None = None, git_cache: str | None = None,
                     git: bool = True) -> DictConfig:
    """The train config, resolved, plus the `run` provenance section.

    `pending` is for dry runs only: an input it reports as unpublished reads as a
    `<pending: ...>` placeholder and is listed under `run.pending` instead of `run.artifacts`.
    `git=False` (dry runs, which write no job.yaml) records `run.git` as unknown instead of
    running git twice (two child processes, ~10-20 ms of a dry run that prints no provenance).
    """
    if mode not in MODES:
        raise ConfigError(f"run mode {mode!r} is not one of {', '.join(MODES)}")

    own_run = user_run(train)  # the config's run: (aliases, env), kept beside the provenance
    if remote is None:  # only a container sees another filesystem: ${auto_mount:} mounts there, else the host path
        env = own_run.get("env") or {}
        image = (profile is not None and profile.get("container_image")) or env.get("container") \
            or env.get("container_image")
        remote = mode != "local" and bool(image)
    declared = tuple(profile.secret_names()) if profile is not None else ()
    plain, res = resolve_train_config(train, remote=remote, secret_names=declared, pending=pending,
                                      aliases=aliases(own_run), git_cache=git_cache)
    own_resolved = plain.pop("run", None) or {}
    if own_resolved.get("env"):  # what runs is the profile with the config's run.env over it
        profile = apply_run_env(profile, own_resolved["env"], f"config (run.env of {spec.name})")
    script = Path(spec.script_path)
    run = {
        "mode": mode,
        "profile": {
            "name": profile.name if profile else "local",
            "chain": list(profile.chain) if profile else ["local"],
            "executor": profile.executor if profile else "local",
            "resolved": profile.redacted() if profile else {"executor": "local"},
        },
        "cli": {"argv": list(argv), "dotlist": list(dotlist), "passthrough": list(passthrough),
                "config": config_name or spec.config.default},
        "recipe": {"name": spec.name, "script": str(script), "runspec_digest": spec.digest,
                   "launch": spec.run.launch, "image": spec.image},
        "git": git_info(script.parent) if git else {"commit": None, "dirty": None},
        "artifacts": dict(res.artifacts),
        "mounts": list(res.mounts),
        "repos": list(res.repos),
        **({"pending": dict(res.pending)} if res.pending else {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
    }

    check_secret_values(run, secret_values(extra=declared, min_len=SCAN_MIN_LEN), "run")  # argv, passthrough, profile
    return OmegaConf.create({**plain, "run": {**own_resolved, **run}})


def extract_train_config(job: DictConfig, for_remote: bool = False, *, code_root: Path | None = None,
                         remote_root: str | None = None) -> DictConfig:
    """job.yaml minus `run`; for remote runs, paths under `code_root` move to `remote_root`.

    Only code moves: paths under the state folder (outputs, artifacts, caches) are data the
    job reads and writes where they are, even when the state folder lies inside the checkout
    (`.state/`), so they are never rewritten into the shipped code folder.
    """
    data: Any = OmegaConf.to_container(job, resolve=False)
    assert isinstance(data, dict)  # a job config is a mapping
    data.pop("run", None)
    if for_remote and code_root and remote_root:
        prefix = str(Path(code_root).resolve()).rstrip("/") + "/"
        state = str(state_dir().resolve()).rstrip("/")

        def is_data(path: str) -> bool:
            return path == state or path.startswith(state + "/")

        def rewrite(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: rewrite(v) for k, v in node.items()}
            if isinstance(node, list):
                return [rewrite(v) for v in node]
            if isinstance(node, str) and (node.startswith(prefix) or node == prefix.rstrip("/")) and not is_data(node):
                return remote_root.rstrip("/") + "/" + node[len(prefix):]
            return node

        data = rewrite(data)
    out = OmegaConf.create(data)
    assert isinstance(out, DictConfig)
    return out


def _atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp file created 0600 (configs may name private paths)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a temp file left by a crash
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_configs(job: DictConfig, train: DictConfig, job_dir: Path) -> tuple[Path, Path]:
    """Write job.yaml and train.yaml (each atomically, mode 0600) into `job_dir`; return both paths.

    The job dir is created 0700. Last line of defence: if the text to write holds the value of
    a secret variable of this environment, nothing is written.
    """
    job_dir = Path(job_dir)
    if not job_dir.is_dir():
        job_dir.parent.mkdir(parents=True, exist_ok=True)
        job_dir.mkdir(mode=0o700, exist_ok=True)
    job_path, train_path = job_dir / "job.yaml", job_dir / "train.yaml"
    texts = {job_path: OmegaConf.to_yaml(job), train_path: OmegaConf.to_yaml(train)}
    values = secret_values(min_len=SCAN_MIN_LEN)
    for path, text in texts.items():
        name = next((n for v, n in values.items() if v in text), None)
        if name:
            raise ConfigError(f"{path.name} would hold the value of the secret ${name}; reference it as "
                              f"${{oc.env:{name}}} (the job reads it from its environment); nothing was written")
    for path, text in texts.items():
        _atomic_write(path, text)
    return job_path, train_path


def generate_job_dir(recipe_name: str, root: Path | None = None) -> Path:
    """`<state>/jobs/<recipe-name>/<UTC time>-<random>`: unique, sortable, not yet created."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(root) if root else state_dir() / "jobs"
    return base / recipe_name.replace("/", "-") / f"{stamp}-{_secrets.token_hex(3)}"
