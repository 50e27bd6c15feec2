"""Import sources are untrusted input: `nemotron nano3 data|model import` copies only what is
inside the source, never half-publishes, never makes files more readable, never moves files
out of the registry, and turns every odd source into one `error:` line.

The real CLI runs on real folders (and the moto S3 server for the credentials case); after
each refusal the registry root is checked to hold no version and no staging area.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_core.errors import ArtifactError

NEMOTRON = Path(sys.executable).with_name("nemotron")


def cli(base: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess:
    (base / "home").mkdir(exist_ok=True)
    (base / "env.toml").touch()
    env = {"PATH": os.environ["PATH"], "HOME": str(base / "home"), "LANG": "C.UTF-8",
           "NEMOTRON_STATE_DIR": str(base / "state"), "NEMOTRON_ENV_FILE": str(base / "env.toml"),
           "XDG_RUNTIME_DIR": str(base / "home"), **extra}
    return subprocess.run([str(NEMOTRON), *argv], capture_output=True, text=True, timeout=300, cwd=base, env=env)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode != 0, out.stdout[-2000:]
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    return lines[0]


def rl_source(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    (folder / "manifest.json").write_text('{"files": ["train.jsonl"]}')
    return folder


def nothing_published(root: Path) -> bool:
    """No version record and no staging area anywhere under the registry root."""
    return not any(root.rglob("v*.json")) and not any(root.rglob("uploads/*"))


def test_link_to_a_private_file_outside_the_source_is_refused(test_dir):
    key = test_dir / "id_rsa"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o600)
    src = rl_source(test_dir / "src")
    (src / "id_rsa").symlink_to(key)
    root = test_dir / "registry"
    line = one_error_line(cli(test_dir, "nano3", "data", "import", "rl", str(src), "--root", str(root)))
    assert "id_rsa is a symlink to" in line and "outside the source" in line, line
    assert nothing_published(root)


@pytest.mark.parametrize("kind", ["dir-link-outside", "dir-link-inside", "dangling", "loop", "fifo"])
def test_odd_entries_inside_the_source_are_one_line_errors(test_dir, kind):
    src = rl_source(test_dir / "src")
    (test_dir / "outside").mkdir()
    if kind == "dir-link-outside":
        (src / "more").symlink_to(test_dir / "outside", target_is_directory=True)
    elif kind == "dir-link-inside":
        (src / "sub").mkdir()
        (src / "sub" / "up").symlink_to(src, target_is_directory=True)  # would recurse forever if followed
    elif kind == "dangling":
        (src / "gone.jsonl").symlink_to(src / "not-there")
    elif kind == "loop":
        (src / "a").symlink_to(src / "b")
        (src / "b").symlink_to(src / "a")
    else:
        os.mkfifo(src / "pipe")  # opening it would block the import forever
    root = test_dir / "registry"
    line = one_error_line(cli(test_dir, "nano3", "data", "import", "rl", str(src), "--root", str(root)))
    expected = {"dir-link-outside": "outside the source", "dir-link-inside": "is a symlink to the folder",
                "dangling": "dangling symlink", "loop": "symlink loop", "fifo": "not a regular file"}[kind]
    assert expected in line, line
    assert nothing_published(root)


@pytest.mark.parametrize("kind", ["root", "loop", "missing"])
def test_odd_sources_are_one_line_errors(test_dir, kind):
    if kind == "root":
        source = "/"
    elif kind == "loop":
        (test_dir / "a").symlink_to(test_dir / "b")
        (test_dir / "b").symlink_to(test_dir / "a")
        source = str(test_dir / "a")
    else:
        source = str(test_dir / "nope")
    root = test_dir / "registry"
    line = one_error_line(cli(test_dir, "nano3", "data", "import", "rl", source, "--root", str(root)))
    assert {"root": "filesystem root", "loop": "symlink loop", "missing": "does not exist"}[kind] in line, line
    assert nothing_published(root)


def test_links_inside_the_source_are_copied_as_content_and_modes_are_kept(test_dir):
    src = rl_source(test_dir / "src")
    (src / "private.jsonl").write_text('{"p": 1}\n')
    (src / "private.jsonl").chmod(0o600)
    (src / "train.jsonl").chmod(0o644)
    (src / "alias.jsonl").symlink_to("train.jsonl")  # relative, stays inside
    root = test_dir / "registry"
    out = cli(test_dir, "nano3", "data", "import", "rl", str(src), "--root", str(root))
    assert out.returncode == 0, out.stderr
    from nemotron_core.artifacts import open_registry

    v = open_registry({"root": str(root)}).resolve("nano3-rl-data")
    files = v.local_path
    assert (files / "alias.jsonl").read_bytes() == (src / "train.jsonl").read_bytes()
    assert not (files / "alias.jsonl").is_symlink()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files.iterdir()}
    assert modes["private.jsonl"] == 0o600  # never more readable than the source
    assert all(m & 0o077 == 0 for m in modes.values()), modes  # the private umask (077) on top
    for p in [root, *root.rglob("*")]:
        assert stat.S_IMODE(p.lstat().st_mode) & 0o007 == 0, p  # nothing world-readable in the registry


def test_move_of_a_folder_inside_the_registry_is_refused(test_dir):
    root = test_dir / "registry"
    src = rl_source(test_dir / "src")
    assert cli(test_dir, "nano3", "data", "import", "rl", str(src), "--root", str(root)).returncode == 0
    from nemotron_core.artifacts import open_registry

    reg = open_registry({"root": str(root)})
    v1 = reg.resolve("nano3-rl-data:v1")
    line = one_error_line(cli(test_dir, "nano3", "data", "import", "rl", str(v1.local_path), "--move",
                              "--root", str(root)))
    assert "inside the artifact root" in line and "without --move" in line, line
    assert reg.verify(v1.ref) and reg.live_versions("nano3-rl-data") == [1]
    # copying a published version's files (no --move) is fine: v1 keeps its files
    out = cli(test_dir, "nano3", "data", "import", "rl", str(v1.local_path), "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert reg.verify(v1.ref) and reg.live_versions("nano3-rl-data") == [1, 2]


def test_a_source_holding_the_registry_root_is_refused(test_dir):
    src = rl_source(test_dir / "src")
    root = src / "registry"
    line = one_error_line(cli(test_dir, "nano3", "data", "import", "rl", str(src), "--root", str(root)))
    assert "contains the artifact root" in line, line
    assert nothing_published(root)


def test_file_deleted_mid_copy_publishes_nothing(make_registry, test_dir, monkeypatch):
    """The listing saw the file, the copy does not find it (deleted in between): one line, and the
    staging area is gone. The race is made deterministic by deleting the file after the listing."""
    import nemotron_core.artifacts.fsspec_backend as backend
    from nemotron_core.artifacts.transfer import open_source

    h = make_registry("local")
    src = rl_source(test_dir / "src")
    (src / "extra.jsonl").write_text("{}\n")
    listed = open_source(src)
    (src / "train.jsonl").unlink()
    monkeypatch.setattr(backend, "open_source", lambda *a, **k: listed)
    with pytest.raises(ArtifactError, match="train.jsonl vanished during the copy; nothing was published"):
        h.registry.publish("nano3-rl-data", src)
    assert h.registry.names() == []
    uploads = Path(h.cfg["root"]) / "nano3-rl-data" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_s3_without_credentials_is_one_line(test_dir, artifact_s3):
    """No key anywhere (no env, no ~/.aws): a registry root or a source on S3 is one line, not a traceback."""
    env = {"AWS_ENDPOINT_URL": artifact_s3.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_SHARED_CREDENTIALS_FILE": str(test_dir / "none"), "AWS_CONFIG_FILE": str(test_dir / "none")}
    root = f"s3://{artifact_s3.bucket}/nocreds"
    line = one_error_line(cli(test_dir, "artifacts", "list", "--root", root, **env))
    assert "credentials" in line.lower() and root in line, line
    src = rl_source(test_dir / "src")
    line = one_error_line(cli(test_dir, "nano3", "data", "import", "rl", str(src), "--root", root, **env))
    assert "credentials" in line.lower(), line
    line = one_error_line(cli(test_dir, "nano3", "data", "import", "rl", f"s3://{artifact_s3.bucket}/src",
                              "--root", str(test_dir / "registry"), **env))
    assert "credentials" in line.lower(), line
