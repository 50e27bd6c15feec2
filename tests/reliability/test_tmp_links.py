"""Links and files in shared places: Ray's short temp-dir links live in a per-user folder that
is checked (a real folder, ours, 0700) before every use, a link another user made there is
never reused, and what the tool writes is not world-readable (private umask).

"Another user" is made for real: as root, `os.lchown`/`os.chown` hand a link or folder to
uid 12345; and the last tests run the code as uid 65534 (`setpriv`), where the old /tmp
link scheme failed with a PermissionError and left stray links.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nemotron_core.errors import NemotronError
from nemotron_core.paths import ray_temp_dir

REPO = Path(__file__).resolve().parents[2]
NEMOTRON = Path(sys.executable).with_name("nemotron")
OTHER = 12345
NOBODY = 65534

as_root = pytest.mark.skipif(os.getuid() != 0, reason="making files owned by another user needs root")


@pytest.fixture
def runtime(test_dir: Path, monkeypatch) -> Path:
    """A private XDG_RUNTIME_DIR, with the socket-length limit set so that it qualifies."""
    rt = test_dir / "rt"
    rt.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(rt))
    monkeypatch.setattr("nemotron_core.paths._ray_temp_dir_limit", lambda: len(str(rt)) + 30)
    return rt


def deep_state(test_dir: Path) -> Path:
    return test_dir / ("deep-state-" + "d" * 50)


@as_root
def test_a_link_another_user_made_is_replaced_not_reused(runtime: Path, test_dir: Path):
    state = deep_state(test_dir)
    link = ray_temp_dir(state)
    assert os.lstat(link).st_uid == os.getuid()
    os.lchown(link, OTHER, OTHER)  # same name, same target string: only the owner differs
    again = ray_temp_dir(state)
    assert again == link and os.lstat(again).st_uid == os.getuid(), "a foreign link was reused"
    assert again.resolve() == (state / "ray").resolve()


@as_root
def test_a_links_folder_another_user_owns_is_refused(runtime: Path, test_dir: Path):
    folder = runtime / "nemotron"
    folder.mkdir(mode=0o700)
    os.chown(folder, OTHER, OTHER)
    with pytest.raises(NemotronError, match=f"belongs to uid {OTHER}, not to you"):
        ray_temp_dir(deep_state(test_dir))
    assert list(folder.iterdir()) == []  # nothing written into it


def test_a_links_folder_that_is_a_link_is_refused(runtime: Path, test_dir: Path):
    elsewhere = test_dir / "elsewhere"
    elsewhere.mkdir()
    (runtime / "nemotron").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(NemotronError, match="is not a folder"):
        ray_temp_dir(deep_state(test_dir))
    assert list(elsewhere.iterdir()) == []


def test_our_loose_links_folder_is_tightened(runtime: Path, test_dir: Path):
    folder = runtime / "nemotron"
    folder.mkdir()
    folder.chmod(0o777)
    ray_temp_dir(deep_state(test_dir))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_an_xdg_runtime_dir_open_to_others_is_not_used(runtime: Path, test_dir: Path):
    runtime.chmod(0o777)  # anyone could swap our folder inside it: fall back to /tmp/nemotron-<uid>
    link = ray_temp_dir(deep_state(test_dir))
    try:
        assert link.parent == Path(f"/tmp/nemotron-{os.getuid()}")
        st = os.lstat(link.parent)
        assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    finally:
        link.unlink()


# ------------------------------------------------------------------ as a non-root user


@pytest.fixture
def nobody_dir() -> Path:
    """A folder under the test state folder that uid 65534 can use (its ancestors get o+x for the
    test's duration, restored after)."""
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as another user")
    state = Path(os.environ["NEMOTRON_STATE_DIR"]).resolve()
    folder = state / f"nobody-{uuid.uuid4().hex[:8]}" / ("deep-" + "d" * 50)
    folder.mkdir(parents=True)
    saved = []
    for p in [*reversed(folder.parents), folder]:
        if p == state or state in p.parents or REPO in p.parents or p == REPO:
            mode = stat.S_IMODE(p.stat().st_mode)
            saved.append((p, mode))
            p.chmod(mode | 0o001)
    os.chown(folder, NOBODY, NOBODY)
    links = Path(f"/tmp/nemotron-{NOBODY}")
    yield folder
    shutil.rmtree(links, ignore_errors=True)
    for p, mode in reversed(saved):
        if p.exists():
            p.chmod(mode)
    shutil.rmtree(folder.parent, ignore_errors=True)


def as_nobody(*argv: str, **extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent", "LANG": "C.UTF-8", **extra}
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           sys.executable, "-m", "nemotron_core.paths", *argv],
                          capture_output=True, text=True, timeout=120, cwd="/", env=env)


def test_non_root_user_gets_a_private_links_folder_and_a_squatted_one_is_one_line(nobody_dir: Path):
    links = Path(f"/tmp/nemotron-{NOBODY}")
    shutil.rmtree(links, ignore_errors=True)
    links.mkdir(mode=0o777)  # squatted by root before nobody's first run
    out = as_nobody("ray-link", str(nobody_dir))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and "belongs to uid 0" in out.stderr
    assert list(links.iterdir()) == []  # no stray link left behind

    links.rmdir()
    out = as_nobody("ray-link", str(nobody_dir))
    assert out.returncode == 0, out.stderr
    link = Path(out.stdout.strip())
    assert link.parent == links and len(str(link)) <= 41
    st = os.lstat(links)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o700)
    assert os.lstat(link).st_uid == NOBODY and os.readlink(link) == str(nobody_dir)

    os.lchown(link, 0, 0)  # root re-owns the link: nobody replaces it (it cannot tell who will re-point it)
    out = as_nobody("ray-link", str(nobody_dir))
    assert out.returncode == 0 and os.lstat(link).st_uid == NOBODY, out.stderr
    out = as_nobody("remove-ray-links", str(nobody_dir))
    assert out.returncode == 0 and not os.path.lexists(link), out.stderr


# ------------------------------------------------------------------ file modes


def _world_or_group_open(root: Path) -> list[str]:
    return [f"{p} {oct(stat.S_IMODE(p.lstat().st_mode))}" for p in [root, *root.rglob("*")]
            if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077]


@pytest.mark.parametrize("umask", [None, "027"])
def test_fresh_state_folder_and_published_artifact_are_private(test_dir: Path, umask):
    """A CLI run that creates the state folder (here: an import into the default registry) leaves
    nothing readable by others: the state folder is 0700, the artifact's files 0600 - or, with
    NEMOTRON_UMASK=027 (a team registry), group-readable and still closed to others."""
    src = test_dir / "src"
    src.mkdir()
    (src / "train.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    (src / "manifest.json").write_text('{"files": ["train.jsonl"]}')
    os.chmod(src / "train.jsonl", 0o644)
    state = test_dir / "fresh-state"
    env = {"PATH": os.environ["PATH"], "HOME": str(test_dir), "LANG": "C.UTF-8", "NEMOTRON_STATE_DIR": str(state),
           "NEMOTRON_ENV_FILE": str(test_dir / "env.toml"), "XDG_RUNTIME_DIR": str(test_dir),
           **({"NEMOTRON_UMASK": umask} if umask else {})}
    (test_dir / "env.toml").touch()
    out = subprocess.run(["bash", "-c", 'umask 022 && exec "$0" "$@"', str(NEMOTRON), "nano3", "data", "import",
                          "rl", str(src)], capture_output=True, text=True, timeout=300, env=env, cwd=test_dir)
    assert out.returncode == 0, out.stderr
    published = list((state / "artifacts" / "nano3-rl-data" / "uploads").glob("*/files/train.jsonl"))
    assert len(published) == 1
    if umask is None:
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE(published[0].stat().st_mode) == 0o600
        assert _world_or_group_open(state) == []
    else:
        assert stat.S_IMODE(published[0].stat().st_mode) == 0o640
        others = [p for p in [state, *state.rglob("*")] if not p.is_symlink() and p.lstat().st_mode & 0o007]
        assert others == []
