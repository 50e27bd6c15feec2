"""state_dir()/ray_temp_dir(): Ray's temp dir stays in the state folder even for deep checkouts."""

from __future__ import annotations

from pathlib import Path

from nemotron_core.paths import _ray_temp_dir_limit, ray_temp_dir


def test_state_path_that_fits_is_used_as_is(tmp_path: Path, monkeypatch):
    import nemotron_core.paths as paths

    monkeypatch.setattr(paths, "_ray_temp_dir_limit", lambda: len(str(tmp_path)) + 4)
    got = ray_temp_dir(tmp_path, "r")
    assert got == (tmp_path / "r").resolve() and got.is_dir() and not got.is_symlink()


def test_deep_state_gets_a_short_symlink_into_it(tmp_path: Path, monkeypatch):
    runtime = tmp_path / "rt"
    runtime.mkdir()
    # A runtime dir short enough for the link: fall back to /tmp when pytest's tmp_path is deep.
    if len(str(runtime)) + 30 > _ray_temp_dir_limit():
        runtime = Path("/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    deep = tmp_path / ("d" * 60)
    got = ray_temp_dir(deep)
    try:
        assert len(str(got)) <= _ray_temp_dir_limit()
        assert got.is_symlink() and got.resolve() == (deep / "ray").resolve()
        (got / "probe").write_text("x")  # what Ray writes there lands in the state folder
        assert (deep / "ray" / "probe").read_text() == "x"
        assert ray_temp_dir(deep) == got  # stable across calls (the head and jobs agree)
    finally:
        got.unlink()


def test_links_into_a_folder_and_dangling_links_are_removed_others_stay(tmp_path: Path, monkeypatch):
    import os

    from nemotron_core.paths import remove_ray_temp_links

    runtime = tmp_path / "rt"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setattr("nemotron_core.paths._ray_temp_dir_limit", lambda: len(str(runtime)) + 30)
    uid = os.getuid()
    gone, other, mine = tmp_path / "gone", tmp_path / "other", tmp_path / "mine"
    for d in (gone, other, mine):
        (d / "ray").mkdir(parents=True)
    (runtime / f"nemotron-ray-{uid}-aaaaaaaaaa").symlink_to(gone / "ray")
    (runtime / f"nemotron-ray-{uid}-bbbbbbbbbb").symlink_to(other / "ray")
    (runtime / f"nemotron-ray-{uid + 1}-cccccccccc").symlink_to(tmp_path / "not-there")  # another user's
    (runtime / "unrelated").symlink_to(tmp_path / "not-there")
    (gone / "ray").rmdir()

    link = ray_temp_dir(mine / ("d" * 40))  # a new link: the dangling one of this user goes
    names = sorted(p.name for p in runtime.iterdir())
    assert names == sorted([link.name, f"nemotron-ray-{uid}-bbbbbbbbbb", f"nemotron-ray-{uid + 1}-cccccccccc",
                            "unrelated"])

    assert remove_ray_temp_links(runtime, into=mine) == [link]  # a test's private state folder, deleted
    assert remove_ray_temp_links(runtime, into=mine) == []
    assert (runtime / f"nemotron-ray-{uid}-bbbbbbbbbb").is_symlink() and (other / "ray").is_dir()
