"""Secrets reach a job only through `<job dir>/secrets.env`, a 0600 file the job sources.

What goes in: the values of environment variables whose *name* is secret
(`secrets.is_secret_name`: KEY/TOKEN/SECRET/PASSWORD..., e.g. WANDB_API_KEY, HF_TOKEN),
the variables a profile lists in `secrets = [...]`, and the one named by
`[wandb] api_key_env`. Nothing else, and never into sbatch text, launch scripts,
job.yaml, jobref.json, Ray runtime envs, logs or Prefect parameters.

How it is read: the job script runs `source_lines()` — tracing (`set -x`) and verbose
(`set -v`) are switched off first so bash does not echo the file, then restored.

And the other way round: the processes we start to submit (`sbatch`, the local wrapper)
get `scrubbed_environ(names=<the profile's secret names>)` — the caller's environment
without those variables — because
`sbatch` copies its whole environment into the job (slurmctld keeps it in its state
folder) and Ray/local children would inherit it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

from nemotron_core.profiles import Profile
from nemotron_core.secrets import login_secrets, secret_env_names

SECRETS_FILE = "secrets.env"
_NAME_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def secret_names(profile: Profile | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the variables that are secrets for this profile, in a stable order."""
    environ = os.environ if environ is None else environ
    names = secret_env_names(environ)  # named like a secret, or declared by the env.toml ([wandb] api_key_env...)
    if profile is not None:
        names.update(profile.get("secrets") or [])
        wandb = profile.get("wandb") or {}
        if isinstance(wandb, dict) and wandb.get("api_key_env"):
            names.add(str(wandb["api_key_env"]))
    return sorted(n for n in names if n and set(n) <= _NAME_OK and not n[0].isdigit())


def collect_secrets(profile: Profile | None = None, environ: Mapping[str, str] | None = None,
                    extra_names: Iterable[str] = ()) -> dict[str, str]:
    """{name: value} for the secret variables that are set (empty values are skipped), plus the HF
    token and W&B key from their login files when the environment lacks them (secrets.login_secrets)."""
    environ = os.environ if environ is None else environ
    names = set(secret_names(profile, environ)) | set(extra_names)
    return {**login_secrets(environ), **{n: environ[n] for n in sorted(names) if environ.get(n)}}


def write_secrets_file(job_dir: str | Path, secrets: Mapping[str, str]) -> Path | None:
    """Write `export NAME='value'` lines to `<job dir>/secrets.env` with mode 0600.

    The file is created 0600 before any byte is written (no window where it is readable).
    Returns None and writes nothing when there are no secrets.
    """
    if not secrets:
        return None
    path = Path(job_dir) / SECRETS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        body = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(secrets.items()))
        os.write(fd, body.encode())
    finally:
        os.close(fd)
    return path


def source_lines(path: str, *, restore: str = "") -> list[str]:
    """Shell lines that source `path` (if present) without tracing it.

    `restore` is the `set` flags to switch back on afterwards (e.g. "-vx" inside
    nemo-run's sbatch template, which runs under `set -evx`).
    """
    quoted = shlex.quote(path)
    lines = [
        "{ set +vx; } 2>/dev/null  # nemotron: no tracing while secrets are read",
        f"if [ -f {quoted} ]; then . {quoted}; fi",
    ]
    if restore:
        lines.append(f"set {restore}")
    return lines


def scrubbed_environ(environ: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> dict[str, str]:
    """A copy of the environment without secret variables (named like one or declared) and without `names`."""
    environ = os.environ if environ is None else environ
    drop = secret_env_names(environ, extra=names)
    return {k: v for k, v in environ.items() if k not in drop}
