"""Registry records are untrusted input: a shared registry's version records and folders are
files any writer can edit, so nothing read from them may lead outside the registry root.

Each test publishes real versions (local folder, and S3 on the moto server), edits a record
or a folder the way a hostile or careless co-user could, then runs the real `nemotron
artifacts show|list|verify|gc` and checks: one `error:` line naming the record file and the
field, non-zero exit, and the "victim" outside the root untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nemotron_core.artifacts.model import ArtifactFile, manifest_digest

NEMOTRON = Path(sys.executable).with_name("nemotron")
NAME = "nano3-sft-data"


def cli(base: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess:
    (base / "home").mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(base / "home"), "LANG": "C.UTF-8",
           "NEMOTRON_STATE_DIR": str(base / "state"), "NEMOTRON_ENV_FILE": str(base / "env.toml"),
           "XDG_RUNTIME_DIR": str(base / "home"), **extra}
    (base / "env.toml").touch()
    return subprocess.run([str(NEMOTRON), *argv], capture_output=True, text=True, timeout=300, cwd=base, env=env)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode != 0, out.stdout[-2000:]
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    return lines[0]


def _edit(reg, version: int, change) -> None:
    """Rewrite name:vN's record with `change(record)` applied; the digest is recomputed, as an
    attacker would, so that only the path checks can catch it."""
    rel = f"{NAME}/versions/v{version}.json"
    rec = json.loads(reg.store.read(rel))
    change(rec)
    rec["digest"] = manifest_digest(ArtifactFile(f["path"], f["size"], f["hash"]) for f in rec["files"])
    reg.store.write_atomic(rel, json.dumps(rec).encode())


HOSTILE = {
    "upload-parent": ("upload", lambda rec, out: rec.update(upload=f"../../../{out}")),
    "upload-absolute": ("upload", lambda rec, out: rec.update(upload=f"/{out}")),
    "upload-path": ("upload", lambda rec, out: rec.update(upload=f"x/../../../../{out}")),
    "file-parent": ("files", lambda rec, out: rec["files"][0].update(path=f"../../../../{out}/f")),
    "file-absolute": ("files", lambda rec, out: rec["files"][0].update(path=f"/{out}/f")),
    "file-newline": ("files", lambda rec, out: rec["files"][0].update(path="a\nb")),
    "lineage-path": ("lineage", lambda rec, out: rec.update(lineage=["../../etc:v1"])),
}


@pytest.fixture(params=["local", "s3"])
def registry(request, make_registry):
    return make_registry(request.param)


def _victim(registry, test_dir: Path) -> tuple[str, object]:
    """A folder outside the registry root (what the hostile paths aim at) and a check it survived."""
    if registry.kind == "local":
        victim = test_dir / "victim"
        (victim / "f").parent.mkdir(parents=True, exist_ok=True)
        (victim / "f").write_text("precious")
        root = Path(registry.cfg["root"])
        return os.path.relpath(victim, root.parent), lambda: (victim / "f").read_text() == "precious"
    fs = registry.registry.store.fs
    bucket = registry.cfg["root"][len("s3://"):].split("/", 1)[0]
    key = f"{bucket}/victim-{uuid.uuid4().hex[:8]}/f"
    fs.pipe_file(key, b"precious")
    # relative to <root>/<name>/uploads/: bucket/prefix/name/uploads/../../../ = bucket/
    return key.split("/", 1)[1].rsplit("/", 1)[0], lambda: fs.cat_file(key) == b"precious"


@pytest.mark.parametrize("hostile", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_record_fields_are_refused_before_any_read_or_delete(registry, make_source, test_dir, hostile):
    reg = registry.registry
    field, change = HOSTILE[hostile]
    target, survived = _victim(registry, test_dir)
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 one PAR1"}))
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 two PAR1"}))  # v1: unaliased, so gc deletes it
    _edit(reg, 1, lambda rec: change(rec, target))
    env = registry.env  # S3: the CLI reads the endpoint and keys from AWS_*
    root = ["--root", registry.cfg["root"]]

    for argv in (["artifacts", "show", f"{NAME}:v1"], ["artifacts", "gc"], ["artifacts", "verify"]):
        line = one_error_line(cli(test_dir, *argv, *root, **env))
        if argv[1] != "verify":
            assert f"{NAME}/versions/v1.json" in line and repr(field) in line, line
        assert survived(), (argv, line)
    listing = cli(test_dir, "artifacts", "list", "--json", *root, **env)
    assert listing.returncode == 0, listing.stderr
    rows = {r["ref"]: r for r in json.loads(listing.stdout)}
    assert f"{NAME}:v1" in rows and repr(field) in rows[f"{NAME}:v1"]["problem"]  # shown as corrupt, not hidden
    assert "problem" not in rows[f"{NAME}:v2"]
    assert reg.resolve(f"{NAME}:v2").version == 2 and survived()


def test_symlinked_upload_folder_is_never_followed(make_registry, make_source, test_dir):
    """A version's upload folder replaced by a link to someone's data: show/verify refuse it
    (naming the link), gc deletes the link only."""
    h = make_registry("local")
    reg = h.registry
    v1 = reg.publish(NAME, make_source({"train.parquet": b"PAR1 one PAR1"}))
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 two PAR1"}))
    victim = test_dir / "victim"
    victim.mkdir()
    (victim / "train.parquet").write_bytes(b"PAR1 one PAR1")  # same bytes: only the link check can catch it
    upload = v1.local_path.parent
    import shutil

    shutil.rmtree(upload)
    upload.symlink_to(victim, target_is_directory=True)
    root = ["--root", h.cfg["root"]]

    line = one_error_line(cli(test_dir, "artifacts", "show", f"{NAME}:v1", *root))
    assert "outside the artifact root" in line and str(upload) in line, line
    out = cli(test_dir, "artifacts", "verify", *root)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert f"FAILED  {NAME}:v1" in out.stdout and f"ok      {NAME}:v2" in out.stdout, out.stdout
    out = cli(test_dir, "artifacts", "gc", *root)
    assert out.returncode == 0, out.stderr
    assert f"deleted version {NAME}:v1" in out.stdout
    assert not os.path.lexists(upload) and (victim / "train.parquet").read_bytes() == b"PAR1 one PAR1"


def test_symlinked_versions_folder_is_refused(make_registry, make_source, test_dir):
    h = make_registry("local")
    reg = h.registry
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 one PAR1"}))
    versions = Path(h.cfg["root"]) / NAME / "versions"
    elsewhere = test_dir / "elsewhere-versions"
    versions.rename(elsewhere)
    versions.symlink_to(elsewhere, target_is_directory=True)
    for argv in (["artifacts", "list"], ["artifacts", "verify"], ["artifacts", "gc"]):
        line = one_error_line(cli(test_dir, *argv, "--root", h.cfg["root"]))
        assert "outside the artifact root" in line and str(versions) in line, (argv, line)
    assert any(elsewhere.iterdir())


def test_corrupt_or_unreadable_latest_is_listed_and_fails_verify(make_registry, make_source, test_dir):
    h = make_registry("local")
    reg = h.registry
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 one PAR1"}))
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 two PAR1"}))
    reg.publish("nano3-rl-data", make_source({"a.jsonl": b"{}\n"}))
    versions = Path(h.cfg["root"]) / NAME / "versions"
    (versions / "v2.json").write_text("{ not json")
    (versions / "v3.json").mkdir()  # unreadable: a folder where the record should be
    root = ["--root", h.cfg["root"]]

    out = cli(test_dir, "artifacts", "list", *root)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert set(rows) == {f"{NAME}:v1", f"{NAME}:v2", f"{NAME}:v3", "nano3-rl-data:v1"}
    assert rows[f"{NAME}:v2"].endswith("corrupt") and rows[f"{NAME}:v3"].endswith("corrupt")

    out = cli(test_dir, "artifacts", "verify", *root)
    assert out.returncode != 0 and "Traceback" not in out.stderr + out.stdout, out.stderr
    assert f"ok      {NAME}:v1" in out.stdout and "ok      nano3-rl-data:v1" in out.stdout, out.stdout
    assert f"FAILED  {NAME}:v2: corrupt version record" in out.stdout and "v2.json: not JSON" in out.stdout
    assert f"FAILED  {NAME}:v3: unreadable version record" in out.stdout, out.stdout
    assert out.stderr.strip().startswith("error: 2 versions failed verify"), out.stderr

    line = one_error_line(cli(test_dir, "artifacts", "show", NAME, *root))  # latest = v3: an error, not v1
    assert "v3.json" in line


def test_corrupt_alias_file_fails_verify(make_registry, make_source, test_dir):
    h = make_registry("local")
    reg = h.registry
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 one PAR1"}), aliases=("latest", "best"))
    reg.publish("nano3-rl-data", make_source({"a.jsonl": b"{}\n"}))
    (Path(h.cfg["root"]) / NAME / "aliases" / "best.json").write_text('{"version": "../../x"}')
    out = cli(test_dir, "artifacts", "verify", "--root", h.cfg["root"])
    assert out.returncode != 0 and "Traceback" not in out.stderr + out.stdout, out.stderr
    assert f"FAILED  {NAME}: corrupt alias file" in out.stdout and "best.json" in out.stdout, out.stdout
    assert "ok      nano3-rl-data:v1" in out.stdout, out.stdout


def test_verify_all_reports_every_problem(make_registry, make_source):
    """The registry-level API the CLI uses: one result per version, nothing skipped."""
    h = make_registry("local")
    reg = h.registry
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 one PAR1"}))
    reg.publish(NAME, make_source({"train.parquet": b"PAR1 two PAR1"}))
    _edit(reg, 2, lambda rec: rec.update(upload="../x"))
    (Path(h.cfg["root"]) / NAME / "aliases").mkdir(exist_ok=True)
    results = reg.verify_all()
    assert [(r.ref, r.ok) for r in results] == [(f"{NAME}:v1", True), (f"{NAME}:v2", False)]
    assert "field 'upload'" in results[1].problem
