"""state_dir()/ray_temp_dir(): Ray's temp dir stays in the state folder even for deep checkouts.

(The /tmp ownership rules - foreign links and folders, non-root users - are in
tests/reliability/test_tmp_links.py.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nemotron_core.paths import ray_temp_dir, remove_ray_temp_links


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch) -> Path:
    """A private XDG_RUNTIME_DIR, with the socket-length limit set so that it qualifies."""
    rt = tmp_path / "rt"
    rt.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(rt))
    monkeypatch.setattr("nemotron_core.paths._ray_temp_dir_limit", lambda: len(str(rt)) + 30)
    return rt


def test_state_path_that_fits_is_used_as_is(tmp_path: Path, monkeypatch):
    import nemotron_core.paths as paths

    monkeypatch.setattr(paths, "_ray_temp_dir_limit", lambda: len(str(tmp_path)) + 4)
    got = ray_temp_dir(tmp_path, "r")
    assert got == (tmp_path / "r").resolve() and got.is_dir() and not got.is_symlink()


def test_deep_state_gets_a_short_symlink_into_it(tmp_path: Path, runtime: Path):
    deep = tmp_path / ("d" * 60)
    got = ray_temp_dir(deep)
    assert got.parent == runtime / "nemotron" and (runtime / "nemotron").stat().st_mode & 0o777 == 0o700
    assert len(str(got)) <= len(str(runtime)) + 30
    assert got.is_symlink() and got.resolve() == (deep / "ray").resolve()
    (got / "probe").write_text("x")  # what Ray writes there lands in the state folder
    assert (deep / "ray" / "probe").read_text() == "x"
    assert ray_temp_dir(deep) == got  # stable across calls (the head and jobs agree)


def test_links_into_a_folder_and_dangling_links_are_removed_others_stay(tmp_path: Path, runtime: Path):
    links = runtime / "nemotron"
    links.mkdir(mode=0o700)
    gone, other, mine = tmp_path / "gone", tmp_path / "other", tmp_path / "mine"
    for d in (gone, other, mine):
        (d / "ray").mkdir(parents=True)
    (links / "ray-aaaaaaaaaa").symlink_to(gone / "ray")
    (links / "ray-bbbbbbbbbb").symlink_to(other / "ray")
    (links / "ray-cccccccccc").symlink_to(tmp_path / "not-there")
    if os.getuid() == 0:
        os.lchown(links / "ray-cccccccccc", 12345, 12345)  # not ours: never touched, even dangling
    else:
        pytest.skip("needs root to make a link owned by another user")
    (links / "unrelated").symlink_to(tmp_path / "not-there")
    (gone / "ray").rmdir()

    link = ray_temp_dir(mine / ("d" * 40))  # a new link: the dangling one of this user goes
    names = sorted(p.name for p in links.iterdir())
    assert names == sorted([link.name, "ray-bbbbbbbbbb", "ray-cccccccccc", "unrelated"])

    assert remove_ray_temp_links(into=mine) == [link]  # a test's private state folder, deleted
    assert remove_ray_temp_links(into=mine) == []
    assert (links / "ray-bbbbbbbbbb").is_symlink() and (other / "ray").is_dir()
