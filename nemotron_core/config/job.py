"""job.yaml (what ran, where, from what) and train.yaml (what the script reads).

job.yaml = the resolved train config + a `run` section with provenance:
    run.mode        local | run (attached) | batch (detached)
    run.profile     name, chain and the resolved profile (secret values redacted)
    run.cli         argv, dotlist, passthrough, config
    run.recipe      name, script, runspec digest
    run.git         commit, dirty
    run.artifacts   every ${art:} reference and the version it pinned
    run.mounts      ${auto_mount:} host:container pairs
    run.created, run.version
train.yaml = job.yaml without `run`; for remote runs, local paths under the code root
are rewritten to the job's remote workdir.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets as _secrets
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nemotron_core.errors import ConfigError, NemotronError, find_cause
from nemotron_core.secrets import REDACTED, is_secret_key, is_secret_name

MODES = ("local", "run", "batch")


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


def _check_secret_literals(cfg: Any, path: str = "") -> None:
    """A secret-named key in a config may only hold an env reference, never a value."""
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            here = f"{path}.{k}" if path else str(k)
            if is_secret_key(k) and isinstance(v, str) and v and not v.startswith("${oc.env:") and v != REDACTED:
                raise ConfigError(f"config key '{here}' holds a secret value; write ${{oc.env:VAR}} "
                                  f"instead and export VAR (secrets never go into job.yaml)")
            _check_secret_literals(v, here)
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            _check_secret_literals(v, f"{path}.{i}")


def _check_secret_values(plain: Any) -> None:
    """No resolved value may equal a secret env var's value (a leak through a plain key)."""
    secrets = {v: k for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 8}
    if not secrets:
        return

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}.{i}")
        elif isinstance(node, str) and any(s in node for s in secrets):
            var = next(secrets[s] for s in secrets if s in node)
            raise ConfigError(f"config key '{path}' resolves to the value of the secret ${var}; "
                              f"put the reference under a secret-named key (e.g. {path.rsplit('.', 1)[-1]}_token) "
                              f"so it stays unresolved in job.yaml")

    walk(plain, "")


def resolve_train_config(train: DictConfig, *, remote: bool = False):
    """Resolve all interpolations, except `${oc.env:...}` under secret-named keys.

    Returns (plain dict, Resolution with pinned artifacts and mounts).
    """
    from nemotron_core.config.resolvers import resolution_scope

    raw = OmegaConf.to_container(train, resolve=False)
    _check_secret_literals(raw)
    kept: dict[str, str] = {}

    def hide(node: Any, path: str = "") -> Any:  # keep secret env refs unresolved
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                here = f"{path}.{k}" if path else str(k)
                if is_secret_key(k) and isinstance(v, str) and v.startswith("${oc.env:"):
                    kept[here] = v
                    out[k] = REDACTED
                else:
                    out[k] = hide(v, here)
            return out
        if isinstance(node, list):
            return [hide(v, f"{path}.{i}") for i, v in enumerate(node)]
        return node

    cfg = OmegaConf.create(hide(raw))
    with resolution_scope(remote=remote) as res:
        try:
            plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except NemotronError:
            raise
        except Exception as e:  # omegaconf's interpolation / missing-value errors
            cause = find_cause(e)
            if cause:
                raise cause from None
            first = str(e).splitlines()[0]
            key = getattr(e, "full_key", None)
            raise ConfigError(f"config key '{key}': {first}" if key else f"config: {first}") from None
    _check_secret_values(plain)
    for dotted, ref in kept.items():
        OmegaConf.update(node := OmegaConf.create(plain), dotted, ref, merge=False)
        plain = OmegaConf.to_container(node, resolve=False)
    return plain, res


def build_job_config(train: DictConfig, *, spec, mode: str = "local", profile=None,
                     argv: Sequence[str] = (), dotlist: Sequence[str] = (), passthrough: Sequence[str] = (),
                     config_name: str | None = None, remote: bool | None = None) -> DictConfig:
    """The train config, resolved, plus the `run` provenance section."""
    from nemotron_core import __version__

    if mode not in MODES:
        raise ConfigError(f"run mode {mode!r} is not one of {', '.join(MODES)}")
    if "run" in train:
        raise ConfigError("a recipe config must not have a top-level 'run' key: it is reserved for job provenance")
    remote = (mode != "local") if remote is None else remote
    plain, res = resolve_train_config(train, remote=remote)
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
        "git": git_info(script.parent),
        "artifacts": dict(res.artifacts),
        "mounts": list(res.mounts),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
    }
    return OmegaConf.create({**plain, "run": run})


def extract_train_config(job: DictConfig, for_remote: bool = False, *, code_root: Path | None = None,
                         remote_root: str | None = None) -> DictConfig:
    """job.yaml minus `run`; for remote runs, paths under `code_root` move to `remote_root`."""
    data = OmegaConf.to_container(job, resolve=False)
    data.pop("run", None)
    if for_remote and code_root and remote_root:
        prefix = str(Path(code_root).resolve()).rstrip("/") + "/"

        def rewrite(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: rewrite(v) for k, v in node.items()}
            if isinstance(node, list):
                return [rewrite(v) for v in node]
            if isinstance(node, str) and (node.startswith(prefix) or node == prefix.rstrip("/")):
                return remote_root.rstrip("/") + "/" + node[len(prefix):]
            return node

        data = rewrite(data)
    return OmegaConf.create(data)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_configs(job: DictConfig, train: DictConfig, job_dir: Path) -> tuple[Path, Path]:
    """Write job.yaml and train.yaml (each atomically) into `job_dir`; return both paths."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    job_path, train_path = job_dir / "job.yaml", job_dir / "train.yaml"
    _atomic_write(job_path, OmegaConf.to_yaml(job))
    _atomic_write(train_path, OmegaConf.to_yaml(train))
    return job_path, train_path


def generate_job_dir(recipe_name: str, root: Path | None = None) -> Path:
    """`<state>/jobs/<recipe-name>/<UTC time>-<random>`: unique, sortable, not yet created."""
    from nemotron_core.paths import state_dir

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(root) if root else state_dir() / "jobs"
    return base / recipe_name.replace("/", "-") / f"{stamp}-{_secrets.token_hex(3)}"
