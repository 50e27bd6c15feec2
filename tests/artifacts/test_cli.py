"""`nemotron artifacts list|show|lineage|alias|verify|gc`, in process (CliRunner and main())."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nemotron_cli.artifacts_cmd import app
from nemotron_core.errors import ArtifactError

runner = CliRunner()


@pytest.fixture
def populated(make_registry, make_source):
    h = make_registry("local")
    reg = h.registry
    reg.publish("nano3-pretrain-data", make_source({"t.bin": b"b", "t.idx": b"i"}), metadata={"producer": "prep"})
    reg.publish("nano3-pretrain-model", make_source({"model.safetensors": b"w" * 2048}),
                metadata={"producer": "pretrain", "metrics": {"loss": 3.2}}, lineage=["nano3-pretrain-data"])
    reg.publish("nano3-pretrain-model", make_source({"model.safetensors": b"x" * 2048}))
    return h


def invoke(h, *args):
    result = runner.invoke(app, [*args, "--root", h.cfg["root"]])
    return result


def test_list(populated):
    r = invoke(populated, "list")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["VERSION", "ALIASES", "FILES", "SIZE", "CREATED", "DIGEST"]
    assert [ln.split()[0] for ln in lines[1:]] == [
        "nano3-pretrain-data:v1", "nano3-pretrain-model:v1", "nano3-pretrain-model:v2"]
    assert "latest" in lines[3] and "2.0 KB" in lines[3]
    r = invoke(populated, "list", "nano3-pretrain-model", "--json")
    assert [v["ref"] for v in json.loads(r.output)] == ["nano3-pretrain-model:v1", "nano3-pretrain-model:v2"]


def test_show_prints_files_metadata_and_lineage(populated):
    r = invoke(populated, "show", "nano3-pretrain-model:v1")
    assert r.exit_code == 0, r.output
    out = r.output
    assert out.startswith("nano3-pretrain-model:v1  (no aliases)")
    assert '"loss": 3.2' in out and "model.safetensors  2048  sha256:" in out
    assert "lineage:\n  nano3-pretrain-model:v1" in out and "└── nano3-pretrain-data:v1" in out
    data = json.loads(invoke(populated, "show", "nano3-pretrain-model:v1", "--json").output)
    assert data["files"][0]["path"] == "model.safetensors" and data["lineage"] == ["nano3-pretrain-data:v1"]


def test_lineage(populated):
    r = invoke(populated, "lineage", "nano3-pretrain-model:v1")
    assert r.output.splitlines()[1].startswith("└── nano3-pretrain-data:v1")


def test_alias_set_move_remove(populated):
    r = invoke(populated, "alias", "nano3-pretrain-model:v1", "best")
    assert r.exit_code == 0 and r.output.strip() == "nano3-pretrain-model:best -> nano3-pretrain-model:v1"
    invoke(populated, "alias", "nano3-pretrain-model:v2", "best")
    assert populated.registry.resolve("nano3-pretrain-model:best").version == 2
    r = invoke(populated, "alias", "nano3-pretrain-model", "best", "--remove")
    assert r.exit_code == 0 and "removed alias nano3-pretrain-model:best" in r.output
    r = invoke(populated, "alias", "nano3-pretrain-model:v1", "latest")
    assert isinstance(r.exception, ArtifactError)


def test_verify_ok_and_failure(populated):
    r = invoke(populated, "verify")
    assert r.exit_code == 0 and r.output.count("ok ") == 3
    v = populated.registry.resolve("nano3-pretrain-model:v2")
    (populated.registry.store.local_path(v.uri[len(populated.registry.root_uri) + 1:]) / "model.safetensors") \
        .write_bytes(b"y" * 2048)
    r = invoke(populated, "verify", "nano3-pretrain-model:v2")
    assert isinstance(r.exception, ArtifactError) and "hash mismatch" in str(r.exception)
    assert "FAILED  nano3-pretrain-model:v2" in r.output


def test_gc_dry_run_then_real(populated):
    r = invoke(populated, "gc", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "would delete version nano3-pretrain-model:v1" in r.output
    assert "would delete version nano3-pretrain-data:v1" not in r.output  # latest of its name
    r = invoke(populated, "gc", "--keep", "nano3-pretrain-model:v1")
    assert "deleted version" not in r.output and "kept 3 version(s)" in r.output
    r = invoke(populated, "gc")
    assert "deleted version nano3-pretrain-model:v1" in r.output
    assert populated.registry.live_versions("nano3-pretrain-model") == [2]


def test_main_prints_one_line_error_and_exits_2(populated, capsys):
    from nemotron_cli.app import main

    code = main(["show", "nano3-sft-model", "--root", populated.cfg["root"]], cli=app)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: no artifact named 'nano3-sft-model'") and err.count("\n") == 1


def test_registry_from_cli_uses_root_or_env_cfg(test_dir):
    from nemotron_cli.artifacts_cmd import _registry_from_cli

    reg = _registry_from_cli(str(test_dir / "a"), cfg={})
    assert reg.root_uri == (test_dir / "a").as_uri()
    reg = _registry_from_cli(None, cfg={"root": str(test_dir / "b")})
    assert reg.root_uri == (test_dir / "b").as_uri()
    reg = _registry_from_cli(None, cfg={})
    assert reg.root_uri.endswith("/artifacts")


def test_cli_modules_import_nothing_heavy():
    code = ("import sys, nemotron_cli.artifacts_cmd, nemotron_cli.import_cmd, nemotron_core.artifacts; "
            "print(sorted(m for m in ('fsspec', 's3fs', 'wandb', 'rich.table', 'pyarrow', 'boto3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
