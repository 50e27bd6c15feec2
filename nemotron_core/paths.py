"""Where the project keeps what runs write: one state folder.

Everything a run writes (Prefect home, nemo-run home, Ray temp dir, HF and inductor
caches, Slurm state, job dirs, the local artifact store) lives under `state_dir()`:
`$NEMOTRON_STATE_DIR` if set, else `.state/` in the project checkout, else
`./.nemotron-state` for an installed (non-editable) copy. Nothing under $HOME or /tmp.

One exception, by necessity: Ray puts unix sockets under its temp dir and a socket path
holds at most 107 bytes, so that dir may be ~41 chars long. When `<state>/ray` is longer
(a deep checkout), `ray_temp_dir()` hands Ray a short symlink in $XDG_RUNTIME_DIR (or /tmp)
that points into the state folder: the files still land under the state folder. Links whose
folder is gone are removed when the next link is made (`remove_ray_temp_links`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: The checkout this package was imported from (editable install / source tree).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def project_root() -> Path | None:
    """The source checkout holding this package, or None for an installed wheel."""
    return PACKAGE_ROOT if (PACKAGE_ROOT / "pyproject.toml").is_file() else None


def state_dir() -> Path:
    env = os.environ.get("NEMOTRON_STATE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = project_root()
    return (root / ".state") if root else (Path.cwd() / ".nemotron-state")


def state_env(state: Path | None = None) -> dict[str, str]:
    """Environment variables that pin every tool's cache/home under the state folder.

    Exported by scripts/ and by executors into jobs so that no tool falls back to
    ~/.cache, ~/.nemo_run, /tmp/ray or /tmp/torchinductor_$USER.
    """
    s = state or state_dir()
    return {
        "NEMOTRON_STATE_DIR": str(s),
        "PREFECT_HOME": str(s / "prefect"),
        "NEMORUN_HOME": str(s / "nemo_run"),
        "HF_HOME": str(s / "cache" / "huggingface"),
        "TORCHINDUCTOR_CACHE_DIR": str(s / "cache" / "inductor"),
        "TRITON_CACHE_DIR": str(s / "cache" / "triton"),
        "WANDB_DIR": str(s / "wandb"),
        "WANDB_CACHE_DIR": str(s / "cache" / "wandb"),
        "WANDB_DATA_DIR": str(s / "cache" / "wandb-data"),  # else wandb stages under ~/.local/share
        "WANDB_CONFIG_DIR": str(s / "cache" / "wandb-config"),
        "MPLCONFIGDIR": str(s / "cache" / "matplotlib"),
        "RAY_TMPDIR": str(s / "ray"),
        "TMPDIR": str(s / "tmp"),
        "XDG_CACHE_HOME": str(s / "cache"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def _ray_temp_dir_limit() -> int:
    """Longest temp dir Ray can use: its longest socket is
    <tmp>/session_YYYY-MM-DD_hh-mm-ss_uuuuuu_<pid>/sockets/dash_MetricsHead (len + 61 + pid digits)."""
    try:
        pid_digits = len(Path("/proc/sys/kernel/pid_max").read_text().strip())
    except OSError:
        pid_digits = 7  # 4194304, the Linux maximum
    return 107 - 61 - pid_digits


def ray_temp_dir(state: Path | None = None, name: str = "ray") -> Path:
    """Ray's temp dir `<state>/<name>`, created; a short symlink to it when that path is too long."""
    real = (state or state_dir()) / name
    real.mkdir(parents=True, exist_ok=True)
    real = real.resolve()
    if len(str(real)) <= _ray_temp_dir_limit():
        return real
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    tag = hashlib.sha256(str(real).encode()).hexdigest()[:10]
    link = base / f"nemotron-ray-{os.getuid()}-{tag}"
    if not (link.is_symlink() and os.readlink(link) == str(real)):
        remove_ray_temp_links(base, dangling_only=True)  # what deleted state folders left behind
        tmp = link.with_name(f"{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(real, target_is_directory=True)
        os.replace(tmp, link)  # atomic: concurrent callers agree on the same link
    if len(str(link)) > _ray_temp_dir_limit():
        from .errors import NemotronError

        raise NemotronError(f"Ray temp dir {link} is too long for unix sockets: set XDG_RUNTIME_DIR to a short folder")
    return link


def remove_ray_temp_links(base: Path | None = None, *, into: Path | None = None,
                          dangling_only: bool = False) -> list[Path]:
    """Remove this user's short Ray links in `base` ($XDG_RUNTIME_DIR or /tmp): those pointing
    under `into`, and/or those whose target is gone. Returns the links removed.

    A link is shared by every Ray process of its state folder and cannot be removed when one
    of them stops (another may still use it), so links are cleaned where it is safe: when the
    target is gone (a deleted checkout or test folder), and by the owner of a whole state
    folder when it is done (the test session, `scripts/ray stop`).
    """
    base = base or Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    inside = str(into.resolve()) + os.sep if into is not None else None
    removed = []
    for link in base.glob(f"nemotron-ray-{os.getuid()}-*"):
        if not link.is_symlink():
            continue
        target = os.readlink(link)
        if (inside is not None and (target + os.sep).startswith(inside)) or (dangling_only and not link.exists()):
            link.unlink(missing_ok=True)
            removed.append(link)
    return removed
