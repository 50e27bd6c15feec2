"""Where the project keeps what runs write: one state folder.

Everything a run writes (Prefect home, nemo-run home, Ray temp dir, HF and inductor
caches, Slurm state, job dirs, the local artifact store) lives under `state_dir()`:
`$NEMOTRON_STATE_DIR` if set, else `.state/` in the project checkout, else
`./.nemotron-state` for an installed (non-editable) copy. Nothing under $HOME or /tmp.
"""

from __future__ import annotations

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
