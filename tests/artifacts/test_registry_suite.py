"""One suite, every backend: memory, local folder, S3 on a real moto server, W&B offline.

W&B offline can publish (into the offline run, for `wandb sync`) but cannot read anything
back - see nemotron_core/artifacts/wandb_backend.py. Tests that need to read back skip on
that backend with the exact reason; tests of publish-side behaviour run on it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from nemotron_core.artifacts import ArtifactVersion, config_lookup
from nemotron_core.artifacts.wandb_backend import OFFLINE_REASON
from nemotron_core.errors import ArtifactError


def need_readback(h) -> None:
    if not h.readback:
        pytest.skip(f"wandb-offline: {OFFLINE_REASON}")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


FILES = {"a.txt": b"alpha\n", "sub/b.bin": bytes(range(256)) * 10, "sub/deeper/c.json": b'{"x": 1}'}


# ------------------------------------------------------------------------- publish / resolve


def test_publish_then_resolve_every_ref_form(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    v = reg.publish("nano3-sft-data", make_source(FILES), metadata={"producer": "test"})
    assert isinstance(v, ArtifactVersion)
    assert (v.name, v.version, v.ref) == ("nano3-sft-data", 1, "nano3-sft-data:v1")
    assert {f.path: f.size for f in v.files} == {k: len(d) for k, d in FILES.items()}
    assert {f.path: f.hash for f in v.files} == {k: sha(d) for k, d in FILES.items()}
    assert v.digest.startswith("sha256:") and v.metadata == {"producer": "test"}
    for ref in ("nano3-sft-data", "nano3-sft-data:v1", "nano3-sft-data:latest"):
        got = reg.resolve(ref)
        assert (got.ref, got.digest, got.files) == (v.ref, v.digest, v.files)
    if registry.kind == "local":
        assert {p.relative_to(v.path).as_posix() for p in Path(v.path).rglob("*") if p.is_file()} == set(FILES)


def test_versions_are_monotonic_and_latest_follows(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    refs = [reg.publish("nano3-rl-data", make_source({"f.jsonl": f"{i}\n"})).ref for i in range(3)]
    assert refs == ["nano3-rl-data:v1", "nano3-rl-data:v2", "nano3-rl-data:v3"]
    assert reg.resolve("nano3-rl-data").ref == "nano3-rl-data:v3"
    assert reg.live_versions("nano3-rl-data") == [1, 2, 3]


def test_same_content_same_digest_different_content_different_digest(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    a = reg.publish("nano3-eval", make_source(FILES))
    b = reg.publish("nano3-eval", make_source(FILES))
    c = reg.publish("nano3-eval", make_source({**FILES, "a.txt": b"changed\n"}))
    assert a.digest == b.digest != c.digest
    assert a.uri != b.uri  # distinct uploads: nothing is shared or overwritten


def test_publish_single_file(registry, make_source):
    need_readback(registry)
    src = make_source({"metrics.json": b'{"acc": 0.5}'})
    v = registry.registry.publish("nano3-eval", src / "metrics.json")
    assert [(f.path, f.size) for f in v.files] == [("metrics.json", 12)]


def test_move_publishes_without_copy(registry, make_source):
    need_readback(registry)
    src = make_source(FILES)
    ino = (src / "sub" / "b.bin").stat().st_ino
    v = registry.registry.publish("nano3-sft-model", src, move=True)
    assert not src.exists(), "move=True must consume the source"
    assert {f.path: f.hash for f in v.files} == {k: sha(d) for k, d in FILES.items()}
    if registry.kind == "local":  # same filesystem: renamed, not copied
        assert os.stat(os.path.join(v.path, "sub", "b.bin")).st_ino == ino
    registry.registry.verify(v.ref)


# ------------------------------------------------------------------------------ aliases


def test_aliases_set_move_remove(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    v1 = reg.publish("nano3-sft-model", make_source({"w": b"1"}), aliases=("latest", "best"))
    v2 = reg.publish("nano3-sft-model", make_source({"w": b"2"}))
    assert reg.resolve("nano3-sft-model:best").ref == v1.ref
    assert reg.aliases("nano3-sft-model") == {"best": 1, "latest": 2}
    assert reg.set_alias("nano3-sft-model:v2", "best").ref == v2.ref
    assert reg.resolve("nano3-sft-model:best").ref == v2.ref
    reg.set_alias("nano3-sft-model:best", "prod")  # alias of an alias pins to the version
    assert reg.show("nano3-sft-model:v2").aliases == ("best", "latest", "prod")
    reg.remove_alias("nano3-sft-model", "best")
    with pytest.raises(ArtifactError, match="no alias 'best'"):
        reg.resolve("nano3-sft-model:best")
    with pytest.raises(ArtifactError, match="latest.*derived"):
        reg.set_alias("nano3-sft-model:v1", "latest")
    with pytest.raises(ArtifactError, match="looks like a version"):
        reg.set_alias("nano3-sft-model:v1", "v7")
    with pytest.raises(ArtifactError, match="no alias 'nope'"):
        reg.remove_alias("nano3-sft-model", "nope")


# --------------------------------------------------------------------- metadata / fields


def test_fields_and_config_lookup_pin_one_version(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    reg.publish("nano3-pretrain-model", make_source({"w": b"1"}),
                metadata={"producer": "pretrain", "metrics": {"loss": 2.5}}, aliases=("latest", "best"))
    v2 = reg.publish("nano3-pretrain-model", make_source({"w": b"2"}))
    lookup = config_lookup(reg)
    assert lookup("nano3-pretrain-model", "path") == (v2.path, "nano3-pretrain-model:v2")
    assert lookup("nano3-pretrain-model:best", "metadata.metrics.loss") == (2.5, "nano3-pretrain-model:v1")
    assert lookup("nano3-pretrain-model:v1", "version") == (1, "nano3-pretrain-model:v1")
    assert lookup("nano3-pretrain-model:v2", "digest") == (v2.digest, v2.ref)
    assert lookup("nano3-pretrain-model:v2", "uri")[0] == v2.uri
    with pytest.raises(ArtifactError, match=r"nano3-pretrain-model:v1 has no field 'metadata.metrics.acc'.*loss"):
        lookup("nano3-pretrain-model:v1", "metadata.metrics.acc")
    with pytest.raises(ArtifactError, match="has no field 'bogus'"):
        lookup("nano3-pretrain-model", "bogus")
    # a pinned ref keeps meaning the same version after a newer publish
    reg.publish("nano3-pretrain-model", make_source({"w": b"3"}))
    assert lookup("nano3-pretrain-model:v2", "path") == (v2.path, v2.ref)
    assert lookup("nano3-pretrain-model", "ref")[1] == "nano3-pretrain-model:v3"


# ------------------------------------------------------------------------------ lineage


def test_lineage_is_pinned_and_rendered(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    data = reg.publish("nano3-pretrain-data", make_source({"d.bin": b"d"}), metadata={"producer": "prep"})
    model = reg.publish("nano3-pretrain-model", make_source({"w": b"w"}), lineage=["nano3-pretrain-data"])
    sft_data = reg.publish("nano3-sft-data", make_source({"s": b"s"}))
    sft = reg.publish("nano3-sft-model", make_source({"w": b"s"}),
                      lineage=[model, "nano3-sft-data:latest"])
    assert model.lineage == (data.ref,)
    assert sft.lineage == (model.ref, sft_data.ref)
    reg.publish("nano3-pretrain-data", make_source({"d.bin": b"newer"}))  # must not change the lineage
    tree = reg.lineage(sft.ref)
    assert [p.ref for p in tree.parents] == [model.ref, sft_data.ref]
    assert [p.ref for p in tree.parents[0].parents] == ["nano3-pretrain-data:v1"]
    text = "\n".join(tree.render())
    assert "nano3-pretrain-data:v1" in text and "producer: prep" in text


def test_missing_lineage_input_registers_nothing(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    with pytest.raises(ArtifactError, match="no artifact named 'nano3-pretrain-data'"):
        reg.publish("nano3-pretrain-model", make_source({"w": b"1"}), lineage=["nano3-pretrain-data:v1"])
    assert reg.names() == []
    if hasattr(reg, "store"):
        assert reg.store.listdir("nano3-pretrain-model/uploads") == []


# ------------------------------------------------------------------------------- errors


def test_missing_artifact_version_alias_are_clear(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    reg.publish("nano3-sft-data", make_source({"a": b"1"}))
    with pytest.raises(ArtifactError, match=r"no artifact named 'nano3-sft-dta'.*did you mean 'nano3-sft-data'"):
        reg.resolve("nano3-sft-dta")
    with pytest.raises(ArtifactError, match=r"nano3-sft-data has no version v9.*latest is v1"):
        reg.resolve("nano3-sft-data:v9")
    with pytest.raises(ArtifactError, match=r"nano3-sft-data has no alias 'prod'"):
        reg.resolve("nano3-sft-data:prod")
    with pytest.raises(ArtifactError, match="invalid artifact ref"):
        reg.resolve("nano3 sft data")


def test_publish_input_errors_register_nothing(registry, make_source, test_dir):
    """Runs on every backend, W&B offline included (publish side only)."""
    reg = registry.registry
    with pytest.raises(ArtifactError, match="does not exist"):
        reg.publish("nano3-sft-data", test_dir / "nope")
    empty = test_dir / "empty"
    empty.mkdir()
    with pytest.raises(ArtifactError, match="holds no files"):
        reg.publish("nano3-sft-data", empty)
    with pytest.raises(ArtifactError, match="invalid artifact name"):
        reg.publish("bad name!", make_source({"a": b"1"}))
    with pytest.raises(ArtifactError, match="not JSON-serializable"):
        reg.publish("nano3-sft-data", make_source({"a": b"1"}), metadata={"x": object()})
    with pytest.raises(ArtifactError, match="looks like a version"):
        reg.publish("nano3-sft-data", make_source({"a": b"1"}), aliases=("v2",))
    if registry.readback:
        assert reg.names() == []


def test_corrupt_record_and_manifest_are_named(registry, make_source):
    need_readback(registry)
    if registry.kind == "wandb-offline":
        pytest.skip("records are W&B's")
    reg = registry.registry
    v = reg.publish("nano3-sft-data", make_source({"a": b"1", "b": b"2"}))
    rel = "nano3-sft-data/versions/v1.json"
    good = reg.store.read(rel)
    reg.store.write_atomic(rel, b"{ not json")
    with pytest.raises(ArtifactError, match=r"corrupt version record .*v1\.json"):
        reg.resolve(v.ref)
    rec = json.loads(good)
    rec["files"][0]["size"] += 1  # manifest no longer matches its digest
    reg.store.write_atomic(rel, json.dumps(rec).encode())
    with pytest.raises(ArtifactError, match=r"corrupt manifest in .*v1\.json"):
        reg.cache_key_part("nano3-sft-data")
    reg.store.write_atomic(rel, good)
    assert reg.resolve(v.ref).digest == v.digest


def test_verify_detects_changed_bytes_but_cache_key_never_reads_them(registry, make_source):
    need_readback(registry)
    if registry.kind == "wandb-offline":
        pytest.skip("files are W&B's")
    reg = registry.registry
    v = reg.publish("nano3-sft-model", make_source({"w.bin": b"0" * 1000, "c.json": b"{}"}))
    key = reg.cache_key_part(v.ref)
    assert key == f"nano3-sft-model:v1@{v.digest}"
    assert reg.verify(v.ref).ref == v.ref
    files_rel = v.uri[len(reg.store.root_uri) + 1:]
    reg.store.remove_tree(f"{files_rel}/w.bin")  # open_write only creates new files
    with reg.store.open_write(f"{files_rel}/w.bin") as f:  # same size, different bytes
        f.write(b"1" * 1000)
    assert reg.cache_key_part(v.ref) == key  # O(files): the record, not the bytes
    with pytest.raises(ArtifactError, match=r"verify nano3-sft-model:v1 file 'w\.bin'.*hash mismatch"):
        reg.verify(v.ref)
    reg.store.remove_tree(f"{files_rel}/c.json")
    with pytest.raises(ArtifactError, match=r"'c\.json'.*missing"):
        reg.verify(v.ref)


def test_cache_key_changes_with_version_and_content(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    reg.publish("nano3-rl-model", make_source({"w": b"1"}))
    k1 = reg.cache_key_part("nano3-rl-model")
    reg.publish("nano3-rl-model", make_source({"w": b"1"}))
    k2 = reg.cache_key_part("nano3-rl-model")
    assert k1 != k2 and k1.split("@")[1] == k2.split("@")[1]  # same content, new version
    assert reg.cache_key_part("nano3-rl-model:v1") == k1


# ----------------------------------------------------------------------------------- gc


def test_gc_keeps_aliased_and_referenced_and_never_reuses_numbers(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    d1 = reg.publish("nano3-sft-data", make_source({"d": b"1"}))
    d2 = reg.publish("nano3-sft-data", make_source({"d": b"2"}))
    reg.publish("nano3-sft-data", make_source({"d": b"3"}))  # v3 = latest
    reg.publish("nano3-sft-model", make_source({"m": b"1"}), lineage=[d1.ref])  # v1 refs data v1
    reg.publish("nano3-sft-model", make_source({"m": b"2"}), aliases=("latest", "best"))  # v2
    reg.publish("nano3-sft-model", make_source({"m": b"3"}))  # v3 = latest
    plan = reg.gc(dry_run=True)
    assert sorted(plan.deleted_versions) == ["nano3-sft-data:v1", "nano3-sft-data:v2", "nano3-sft-model:v1"]
    assert reg.live_versions("nano3-sft-data") == [1, 2, 3], "dry run removes nothing"
    # keep model v1 explicitly: its lineage (data v1) is then kept too
    report = reg.gc(keep=["nano3-sft-model:v1"])
    assert report.deleted_versions == [d2.ref]
    assert reg.live_versions("nano3-sft-data") == [1, 3]
    with pytest.raises(ArtifactError, match=r"nano3-sft-data:v2 was deleted by gc"):
        reg.resolve(d2.ref)
    report = reg.gc()
    assert sorted(report.deleted_versions) == ["nano3-sft-data:v1", "nano3-sft-model:v1"]
    assert reg.live_versions("nano3-sft-model") == [2, 3]
    assert reg.resolve("nano3-sft-model:best").ref == "nano3-sft-model:v2"
    v4 = reg.publish("nano3-sft-data", make_source({"d": b"4"}))
    assert v4.ref == "nano3-sft-data:v4", "numbers of deleted versions are never handed out again"
    if hasattr(reg, "store"):
        kept_uploads = {reg.resolve(r).uri.rsplit("/", 2)[-2] for r in ("nano3-sft-data:v3", "nano3-sft-data:v4")}
        assert set(reg.store.listdir("nano3-sft-data/uploads")) == kept_uploads


def test_list_and_show(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    reg.publish("nano3-sft-data", make_source({"a": b"1"}), aliases=("latest", "best"))
    reg.publish("nano3-sft-data", make_source({"a": b"22"}))
    reg.publish("nano3-eval", make_source({"m.json": b"{}"}), metadata={"metrics": {"acc": 1.0}})
    listed = reg.list()
    assert [(v.ref, v.aliases) for v in listed] == [
        ("nano3-eval:v1", ("latest",)), ("nano3-sft-data:v1", ("best",)), ("nano3-sft-data:v2", ("latest",))]
    assert [v.ref for v in reg.list("nano3-sft-data")] == ["nano3-sft-data:v1", "nano3-sft-data:v2"]
    shown = reg.show("nano3-eval")
    assert shown.metadata["metrics"] == {"acc": 1.0} and shown.aliases == ("latest",)
    assert reg.names() == ["nano3-eval", "nano3-sft-data"]
    with pytest.raises(ArtifactError, match="no artifact named 'nano3-rl-data'"):
        reg.list("nano3-rl-data")


def test_concurrent_threads_get_distinct_versions(registry, make_source):
    """In-process race (threads); the multi-process race is in test_crash_and_concurrency."""
    need_readback(registry)
    reg = registry.registry
    sources = [make_source({"who": f"{w}-{i}"}) for w in range(4) for i in range(3)]
    results: list[str] = []
    errors: list[BaseException] = []

    def worker(srcs):
        try:
            for s in srcs:
                results.append(reg.publish("nano3-rl-data", s).ref)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(sources[w * 3:(w + 1) * 3],)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results, key=lambda r: int(r.rsplit("v", 1)[1])) == [f"nano3-rl-data:v{i}" for i in range(1, 13)]
    contents = set()
    for v in reg.list("nano3-rl-data"):
        reg.verify(v.ref)
        contents.add(v.files[0].hash)
    assert len(contents) == 12, "every publish kept its own content"


def test_local_copy_is_a_verified_local_folder(registry, make_source):
    need_readback(registry)
    reg = registry.registry
    v = reg.publish("nano3-sft-model", make_source(FILES))
    folder = reg.local_copy(v.ref)
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == FILES
    if registry.kind == "local":
        assert str(folder) == v.path, "a local store hands out its own folder, no copy"
    else:
        assert reg.local_copy("nano3-sft-model") == folder, "cached by version + digest"
