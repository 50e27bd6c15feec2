"""W&B backend: what offline mode really does, and what it refuses (no network here).

Offline publish is checked against W&B's own offline transaction log (the run-*.wandb
file that `wandb sync` uploads), parsed as LevelDB-log records of wandb's protobufs: the
artifact record must be there with our name, type, aliases, metadata and digest. Reads must fail with one clear ArtifactError. The online
code paths cannot run without a W&B server; the last test only checks that the wandb
0.31 API they call exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemotron_core.artifacts.wandb_backend import offline_artifacts
from nemotron_core.errors import ArtifactError


def offline_artifact_records(v) -> list:
    """Artifact records in the offline run a publish wrote to. (Located from the returned
    uri: wandb reads WANDB_DIR once per process, so a later test's env does not move it.)"""
    run_dir = Path(v.uri.removeprefix("wandb-offline://"))
    assert run_dir.name.startswith("offline-run-"), v.uri
    return offline_artifacts(run_dir)


@pytest.fixture
def wandb_reg(make_registry):
    return make_registry("wandb-offline").registry


def test_offline_publish_is_logged_for_sync(wandb_reg, wandb_offline_env, make_source):
    src = make_source({"model.safetensors": b"\x00" * 64, "config.json": b"{}"})
    v = wandb_reg.publish("nano3-sft-model", src, metadata={"producer": "test", "metrics": {"loss": 1.5}},
                          lineage=["nano3-sft-data:v2"], aliases=("latest", "best"))
    assert v.pending and v.version is None and v.ref == "nano3-sft-model:pending"
    assert v.digest.startswith("wandb:") and len(v.digest) == len("wandb:") + 32
    assert {f.path for f in v.files} == {"model.safetensors", "config.json"}
    assert all(f.hash.startswith("md5:") for f in v.files)
    assert v.lineage == ("nano3-sft-data:v2",)
    with pytest.raises(ArtifactError, match="no version number until `wandb sync`"):
        v.field("version")
    assert src.exists(), "publish copies; the source stays"

    records = offline_artifact_records(v)
    assert len(records) == 1, "publish returns only once the record is in the offline log"
    art = records[0]
    assert (art.name, art.type) == ("nano3-sft-model", "model")
    assert set(art.aliases) == {"latest", "best"}
    assert "wandb:" + art.digest == v.digest
    meta = json.loads(art.metadata)
    assert meta["producer"] == "test" and meta["metrics"] == {"loss": 1.5}
    assert meta["nemotron"]["lineage"] == ["nano3-sft-data:v2"]
    staged = list((wandb_offline_env / "data" / "artifacts" / "staging").iterdir())
    assert len(staged) == 2, "files were copied to W&B's staging area for the later sync"


def test_offline_move_keeps_files_until_sync(wandb_reg, wandb_offline_env, make_source):
    src = make_source({"w.bin": b"abc"})
    wandb_reg.publish("nano3-rl-model", src, move=True)
    assert not src.exists()
    staged = list((wandb_offline_env / "data" / "artifacts" / "staging").iterdir())
    assert [p.read_bytes() for p in staged] == [b"abc"], "offline move must keep a staged copy for sync"


def test_offline_reads_fail_clearly(wandb_reg, make_source):
    calls = {
        "resolve": lambda: wandb_reg.resolve("nano3-sft-model:best"),
        "cache_key_part": lambda: wandb_reg.cache_key_part("nano3-sft-model:v1"),
        "list": lambda: wandb_reg.list(),
        "list name": lambda: wandb_reg.list("nano3-sft-model"),
        "show": lambda: wandb_reg.show("nano3-sft-model"),
        "lineage": lambda: wandb_reg.lineage("nano3-sft-model"),
        "set_alias": lambda: wandb_reg.set_alias("nano3-sft-model:v1", "prod"),
        "verify": lambda: wandb_reg.verify("nano3-sft-model:v1"),
        "gc": lambda: wandb_reg.gc(),
    }
    for what, call in calls.items():
        with pytest.raises(ArtifactError, match="offline mode cannot read artifacts back") as info:
            call()
        assert "\n" not in str(info.value), what


def test_offline_lineage_must_be_pinned(wandb_reg, make_source):
    with pytest.raises(ArtifactError, match="must be pinned"):
        wandb_reg.publish("nano3-sft-model", make_source({"w": b"1"}), lineage=["nano3-sft-data:best"])


def test_wandb_config_errors():
    from nemotron_core.artifacts import open_registry

    with pytest.raises(ArtifactError, match="needs project"):
        open_registry({"backend": "wandb"})
    with pytest.raises(ArtifactError, match="mode = 'sometimes'"):
        open_registry({"backend": "wandb", "project": "p", "mode": "sometimes"})


def test_online_api_surface_exists():
    """The online paths (not runnable here: no W&B server) call only these wandb 0.31 APIs."""
    import wandb
    from wandb.apis.public import Api
    from wandb.sdk.artifacts.artifact import Artifact

    for attr in ("artifact", "artifacts", "artifact_types"):
        assert callable(getattr(Api, attr))
    for attr in ("add_dir", "add_file", "wait", "save", "delete", "download", "verify"):
        assert callable(getattr(Artifact, attr))
    for prop in ("aliases", "digest", "version", "source_name", "metadata", "manifest", "created_at", "type"):
        assert isinstance(getattr(Artifact, prop), property)
    assert "reinit" in wandb.init.__code__.co_varnames


def test_offline_log_reader_reassembles_records_across_blocks(wandb_reg, wandb_offline_env, make_source):
    big = "x" * 100_000  # > 3 log blocks of 32 KiB: FIRST/MIDDLE/LAST chunks
    v = wandb_reg.publish("nano3-eval", make_source({"m.json": b"{}"}), metadata={"blob": big})
    (art,) = offline_artifact_records(v)
    assert json.loads(art.metadata)["blob"] == big and "wandb:" + art.digest == v.digest
