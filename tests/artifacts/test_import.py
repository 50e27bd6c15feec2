"""`nemotron nano3 data|model import STAGE SOURCE`: layout checks and registration.

Real files: Parquet written by pyarrow, safetensors by safetensors.numpy, bin/idx pairs,
JSONL. Sources are local folders and s3:// URIs on the moto server.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nemotron_core.artifacts.layouts import check_layout
from nemotron_core.artifacts.transfer import open_source
from nemotron_cli.import_cmd import data_import_app, import_source, model_import_app
from nemotron_core.errors import ArtifactError


def parquet_bytes(rows: int = 3) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"messages": [f"m{i}" for i in range(rows)]}), buf)
    return buf.getvalue()


def safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    return save({"w": np.zeros((2, 2), dtype=np.float32)})


LAYOUTS = {
    ("data", "pretrain"): {"text_document.bin": b"\x00" * 32, "text_document.idx": b"MMIDIDX\x00",
                           "code.bin": b"\x01" * 8, "code.idx": b"MMIDIDX\x00",
                           "blend.json": json.dumps(["0.7", "/abs/old/path/text_document", "0.3", "code"]),
                           "tokenizer/tokenizer.json": "{}"},
    ("data", "sft"): {"train/part-0.parquet": None, "validation.parquet": None, "README.md": "x"},
    ("data", "rl"): {"train.jsonl": '{"prompt": "1+1", "answer": "2"}\n', "manifest.json": '{"files": ["train.jsonl"]}'},
    ("model", "sft"): {"config.json": '{"model_type": "llama"}', "model.safetensors": None, "tokenizer.json": "{}"},
}


def build(make_source, kind, stage, **overrides):
    files = dict(LAYOUTS[(kind, stage if kind == "data" else "sft")])
    files.update(overrides)
    out = {}
    for rel, data in files.items():
        if data is None:
            data = parquet_bytes() if rel.endswith(".parquet") else safetensors_bytes()
        if data is not False:
            out[rel] = data
    return make_source(out)


@pytest.mark.parametrize(("kind", "stage", "name", "layout_kind"), [
    ("data", "pretrain", "nano3-pretrain-data", "megatron-indexed"),
    ("data", "sft", "nano3-sft-data", "parquet-splits"),
    ("data", "rl", "nano3-rl-data", "jsonl"),
    ("model", "pretrain", "nano3-pretrain-model", "hf-safetensors"),
    ("model", "sft", "nano3-sft-model", "hf-safetensors"),
    ("model", "rl", "nano3-rl-model", "hf-safetensors"),
])
def test_import_good_layouts_via_cli(kind, stage, name, layout_kind, make_registry, make_source):
    h = make_registry("local")
    src = build(make_source, kind, stage)
    app = data_import_app if kind == "data" else model_import_app
    result = CliRunner().invoke(app, [stage, str(src), "--root", h.cfg["root"], "--alias", "baseline"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"as {name}:v1" in result.output
    v = h.registry.resolve(f"{name}:baseline")
    assert v.metadata["producer"] == "import" and v.metadata["source"] == str(src)
    assert v.metadata["layout"]["kind"] == layout_kind
    assert {f.path for f in v.files} == {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    h.registry.verify(v.ref)


@pytest.mark.parametrize(("kind", "stage", "overrides", "message"), [
    ("data", "pretrain", {"code.idx": False}, r"code\.bin has no code\.idx"),
    ("data", "pretrain", {"blend.json": False}, "blend.json is missing"),
    ("data", "pretrain", {"blend.json": "[1.0, \"missing\"]"}, "names prefix 'missing'"),
    ("data", "pretrain", {"blend.json": "{oops"}, "blend.json is not valid JSON"),
    ("data", "pretrain", {"blend.json": "[]"}, "names no dataset prefixes"),
    ("data", "sft", {"train/part-0.parquet": False}, r"no train split found \(splits: validation\)"),
    ("data", "sft", {"train/part-0.parquet": b"not parquet at all"}, "is not a Parquet file"),
    ("data", "rl", {"manifest.json": False}, "manifest.json is missing"),
    ("data", "rl", {"manifest.json": '{"files": ["other.jsonl"]}'}, "lists 'other.jsonl'"),
    ("data", "rl", {"train.jsonl": "[1, 2]\n"}, "first line is not a JSON object"),
    ("model", "sft", {"config.json": False}, "config.json is missing"),
    ("model", "sft", {"model.safetensors": False, "pytorch_model.bin": b"x"}, r"found pytorch_model\.bin"),
    ("model", "sft", {"model.safetensors": b"\xff" * 16}, "not a valid safetensors file"),
    ("model", "sft", {"model.safetensors": False, "model-00001-of-00002.safetensors": None,
                      "model.safetensors.index.json": json.dumps({"weight_map": {
                          "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})},
     r"shard model-00002-of-00002\.safetensors .* is missing"),
])
def test_bad_layouts_are_refused_and_register_nothing(kind, stage, overrides, message, make_registry, make_source):
    h = make_registry("local")
    src = build(make_source, kind, stage, **overrides)
    with pytest.raises(ArtifactError, match=message):
        import_source(kind, stage, str(src), root=h.cfg["root"])
    assert h.registry.names() == []


def test_sharded_model_with_index_is_accepted(make_source):
    src = build(make_source, "model", "sft", **{
        "model.safetensors": False, "model-00001-of-00002.safetensors": None, "model-00002-of-00002.safetensors": None,
        "model.safetensors.index.json": json.dumps({"weight_map": {
            "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})})
    summary = check_layout("model", "sft", open_source(src))
    assert summary["weights"] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def test_import_from_s3_uri_into_s3_registry(make_registry, make_source):
    h = make_registry("s3")
    src = build(make_source, "data", "sft")
    reg = h.registry
    # put the dataset into the same bucket, beside the registry
    uri = reg.root_uri.rsplit("/", 1)[0] + "/incoming/sft"
    fs = reg.store.fs
    for p in src.rglob("*"):
        if p.is_file():
            fs.pipe_file(f"{uri[len('s3://'):]}/{p.relative_to(src).as_posix()}", p.read_bytes())
    v = import_source("data", "sft", uri, cfg=h.cfg)
    assert v.ref == "nano3-sft-data:v1" and v.metadata["source"] == uri
    assert v.metadata["layout"]["splits"] == {"train": 1, "validation": 1}
    reg.verify(v.ref)
    with pytest.raises(ArtifactError, match="does not exist or holds no files"):
        import_source("data", "sft", uri + "-missing", cfg=h.cfg)


def test_import_move_renames_local_folder(make_registry, make_source):
    h = make_registry("local")
    src = build(make_source, "model", "rl")
    v = import_source("model", "rl", str(src), root=h.cfg["root"], move=True)
    assert not src.exists() and v.ref == "nano3-rl-model:v1"
    h.registry.verify(v.ref)


def test_import_rejects_a_file_and_unknown_stage(make_source):
    src = build(make_source, "data", "rl")
    with pytest.raises(ArtifactError, match="is a file"):
        check_layout("data", "rl", open_source(src / "train.jsonl"))
    with pytest.raises(ArtifactError, match="unknown stage 'eval'"):
        import_source("data", "eval", str(src))
