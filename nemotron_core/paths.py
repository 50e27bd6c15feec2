"""Where the project keeps what runs write: one state folder.

Everything a run writes (Prefect home, nemo-run home, Ray temp dir, HF and inductor
caches, Slurm state, job dirs, the local artifact store) lives under `state_dir()`:
`$NEMOTRON_STATE_DIR` if set, else `.state/` in the project checkout, else
`./.nemotron-state` for an installed (non-editable) copy. Nothing under $HOME or /tmp.

One exception, by necessity: Ray puts unix sockets under its temp dir and a socket path
holds at most 107 bytes, so that dir may be ~41 chars long. When `<state>/ray` is longer
(a deep checkout), `ray_temp_dir()` hands Ray a short symlink that points into the state
folder: the files still land under the state folder. The links live in a per-user folder,
`$XDG_RUNTIME_DIR/nemotron` or `/tmp/nemotron-<uid>`, created 0700 and checked (a real
folder, owned by this user, no group/other access) before every use: /tmp is shared, so a
link another user planted is never followed or reused. Links whose folder is gone are
removed when the next link is made (`remove_ray_temp_links`).

File modes: whoever resolves the state folder (CLI, flows, workers, jobs) gets a umask of
at least 077 (`private_umask`), so what the tool writes - state, job dirs, published
artifacts - is readable by the owner only; children (Ray, Slurm jobs) inherit it.
`NEMOTRON_UMASK=027` (octal) opens files to the group, e.g. for a team registry; the
"other" bits stay closed whatever it says.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

from .errors import NemotronError

#: The checkout this package was imported from (editable install / source tree).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def project_root() -> Path | None:
    """The source checkout holding this package, or None for an installed wheel."""
    return PACKAGE_ROOT if (PACKAGE_ROOT / "pyproject.toml").is_file() else None


def private_umask() -> int:
    """Tighten this process's umask to at least 077 (or $NEMOTRON_UMASK, which always keeps
    "other" closed); returns the umask now in force. Idempotent and cheap (two syscalls)."""
    wanted = 0o077
    text = os.environ.get("NEMOTRON_UMASK")
    if text:
        try:
            wanted = int(text, 8) | 0o007
        except ValueError:
            raise NemotronError(f"NEMOTRON_UMASK={text!r} is not an octal umask; use e.g. 077 or 027") from None
    old = os.umask(wanted)
    new = (old | wanted) & 0o777 if not text else wanted
    if new != wanted:
        os.umask(new)
    return new


def state_dir() -> Path:
    """The state folder (not created here); also applies `private_umask()` so that whatever the
    caller writes under it next is private, whichever entry point it came through."""
    private_umask()
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
    private_umask()  # whoever exports the state folder to a child hands it the private umask too
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


def _private_dir(path: Path) -> Path:
    """`path` as a folder only this user can enter: created 0700, else checked with lstat (a real
    folder, not a link; owned by us; no group/other access - tightened when we own it)."""
    uid = os.getuid()
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise NemotronError(f"cannot create {path} for Ray's short links ({exc.strerror}); set XDG_RUNTIME_DIR "
                            f"to a private folder") from None
    st = os.lstat(path)

    if not stat.S_ISDIR(st.st_mode):
        raise NemotronError(f"{path} is not a folder (a link or file someone else may have planted); remove it, "
                            f"or set XDG_RUNTIME_DIR to a private folder")
    if st.st_uid != uid:
        raise NemotronError(f"{path} belongs to uid {st.st_uid}, not to you (uid {uid}); its links cannot be "
                            f"trusted - remove it (ask an admin), or set XDG_RUNTIME_DIR to a private folder")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700, follow_symlinks=False)
    return path


def ray_link_dir() -> Path:
    """The per-user folder for Ray's short links: $XDG_RUNTIME_DIR/nemotron when that is a
    folder of ours that keeps links short enough, else /tmp/nemotron-<uid>."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and len(runtime) + len("/nemotron/ray-") + _LINK_HASH <= _ray_temp_dir_limit():
        try:
            st = os.stat(runtime)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022:
                return _private_dir(Path(runtime) / "nemotron")
        except OSError:
            pass  # exported by sbatch from another machine: not here
    return _private_dir(Path("/tmp") / f"nemotron-{os.getuid()}")


_LINK_HASH = 10


def ray_temp_dir(state: Path | None = None, name: str = "ray") -> Path:
    """Ray's temp dir `<state>/<name>`, created; a short symlink to it when that path is too long."""
    real = (state or state_dir()) / name
    real.mkdir(parents=True, exist_ok=True)
    return short_ray_link(real.resolve())


def short_ray_link(real: Path) -> Path:
    """`real` when Ray's socket paths fit under it, else a link to it in `ray_link_dir()`: ours
    (lstat owner) and pointing at `real`, or replaced atomically - never one another user made."""
    if len(str(real)) <= _ray_temp_dir_limit():
        return real
    base = ray_link_dir()
    link = base / f"ray-{hashlib.sha256(str(real).encode()).hexdigest()[:_LINK_HASH]}"

    if len(str(link)) > _ray_temp_dir_limit():
        raise NemotronError(f"Ray temp dir {link} is too long for unix sockets: set XDG_RUNTIME_DIR to a short "
                            f"private folder")
    if not _our_link_to(link, real):
        remove_ray_temp_links(base, dangling_only=True)  # what deleted state folders left behind
        tmp = link.with_name(f"{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(real, target_is_directory=True)
        os.replace(tmp, link)  # atomic: concurrent callers agree on the same link
    return link


def _our_link_to(link: Path, real: Path) -> bool:
    try:
        st = os.lstat(link)
        return stat.S_ISLNK(st.st_mode) and st.st_uid == os.getuid() and os.readlink(link) == str(real)
    except OSError:
        return False


def remove_ray_temp_links(base: Path | None = None, *, into: Path | None = None,
                          dangling_only: bool = False) -> list[Path]:
    """Remove this user's short Ray links in `base` (default `ray_link_dir()`): those pointing
    under `into`, and/or those whose target is gone. Returns the links removed.

    A link is shared by every Ray process of its state folder and cannot be removed when one
    of them stops (another may still use it), so links are cleaned where it is safe: when the
    target is gone (a deleted checkout or test folder), and by the owner of a whole state
    folder when it is done (the test session, `scripts/ray stop`).
    """
    base = base or ray_link_dir()
    inside = str(into.resolve()) + os.sep if into is not None else None
    removed = []
    for link in base.glob("ray-*"):
        try:
            st = os.lstat(link)
        except OSError:
            continue
        if not stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid():
            continue
        target = os.readlink(link)
        if (inside is not None and (target + os.sep).startswith(inside)) or (dangling_only and not link.exists()):
            link.unlink(missing_ok=True)
            removed.append(link)
    return removed


def _main(argv: list[str]) -> int:
    """`python -m nemotron_core.paths ray-link REAL | remove-ray-links FOLDER`: the one rule, for shell scripts."""
    try:
        if len(argv) == 2 and argv[0] == "ray-link":
            print(short_ray_link(Path(argv[1]).resolve()))
        elif len(argv) == 2 and argv[0] == "remove-ray-links":
            for removed in remove_ray_temp_links(into=Path(argv[1])):
                print(removed)
        else:
            print("usage: python -m nemotron_core.paths ray-link REAL | remove-ray-links FOLDER", file=sys.stderr)
            return 2
    except (NemotronError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
