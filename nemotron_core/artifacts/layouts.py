"""Layout checks for `nemotron nano3 data|model import STAGE SOURCE`.

Each check lists the source once (local folder or s3:// URI) and reads only small
things (JSON files, a few header bytes), never whole data files. It returns a summary
that goes into the artifact's metadata["layout"], or raises ArtifactError naming the
missing/bad file and what the layout should be.

    data pretrain -> nano3-pretrain-data   Megatron indexed dataset: PREFIX.bin + PREFIX.idx pairs
                                          and blend.json naming the prefixes (relative to the
                                          folder; absolute prefixes are matched by base name):
                                          ["0.7", "a", "0.3", "b"] | ["a", "b"] |
                                          {"prefixes": [...], "weights": [...]} |
                                          {"train": <any of those>, "validation": ..., "test": ...}
    data sft      -> nano3-sft-data        Parquet splits: *.parquet under train/validation/test
                                          (file `train.parquet`, `train-00000-of-00002.parquet`,
                                          or folder `train/`); a train split is required
    data rl       -> nano3-rl-data         *.jsonl files (each line a JSON object) + manifest.json
                                          (a JSON object; if it has "files", each must exist)
    model *       -> nano3-*-model         Hugging Face safetensors layout: config.json and
                                          model.safetensors, or shards + model.safetensors.index.json
                                          whose weight_map names only present shards
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from typing import Any

from nemotron_core.errors import ArtifactError

from .transfer import SourceTree

STAGES = ("pretrain", "sft", "rl")
_SPLITS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
           "val": "validation", "dev": "validation", "test": "test"}
_SPLIT_RE = re.compile(r"(?:^|/)(train|training|validation|valid|val|dev|test)(?:[-_./]|$)")
_MAX_SMALL = 64 << 20


def artifact_name(kind: str, stage: str) -> str:
    if stage not in STAGES:
        raise ArtifactError(f"unknown stage {stage!r}; use pretrain | rl | sft")
    return f"nano3-{stage}-{'data' if kind == 'data' else 'model'}"


def check_layout(kind: str, stage: str, src: SourceTree) -> dict[str, Any]:
    if src.single_file:
        raise ArtifactError(f"import {kind} {stage}: {src.display} is a file; pass the folder that holds the "
                            f"{kind}")
    if kind == "model":
        return check_hf_model(src)
    checks: dict[str, Callable[[SourceTree], dict[str, Any]]] = {
        "pretrain": check_pretrain_data, "sft": check_sft_data, "rl": check_rl_data}
    if kind != "data" or stage not in checks:
        raise ArtifactError(f"unknown import kind {kind} {stage}; use data|model pretrain|sft|rl")
    return checks[stage](src)


def _read_small(src: SourceTree, rel: str, what: str) -> bytes:
    size = dict(src.files).get(rel, 0)
    if size > _MAX_SMALL:
        raise ArtifactError(f"{what} {src.display}/{rel} is {size} bytes; expected a small JSON file")
    with src.open(rel) as f:
        return f.read()


def _read_json(src: SourceTree, rel: str, what: str) -> Any:
    try:
        return json.loads(_read_small(src, rel, what))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{what}: {src.display}/{rel} is not valid JSON ({exc}); fix or regenerate it") from None


# ------------------------------------------------------------------------ pretrain data


def _blend_prefixes(blend: Any) -> list[str]:
    out: list[str] = []
    if isinstance(blend, dict):
        if "prefixes" in blend or "paths" in blend:
            out += _blend_prefixes(blend.get("prefixes", blend.get("paths")))
        for key, value in blend.items():
            if key in ("prefixes", "paths", "weights"):
                continue
            if key in _SPLITS or key in ("splits", "blend", "blend_per_split", "data_path"):  # splits: what data prep writes
                out += _blend_prefixes(value)
    elif isinstance(blend, list):
        def is_weight(x: Any) -> bool:
            if isinstance(x, (int, float)) and not isinstance(x, bool):
                return True
            try:
                float(x)
                return True
            except (TypeError, ValueError):
                return False

        alternating = len(blend) % 2 == 0 and all(is_weight(w) for w in blend[0::2]) and blend
        for i, item in enumerate(blend):
            if alternating and i % 2 == 0:
                continue
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, (list, dict)):
                out += _blend_prefixes(item)
    elif isinstance(blend, str):
        out.append(blend)
    return out


def check_pretrain_data(src: SourceTree) -> dict[str, Any]:
    what = "pretrain data"
    rels = {rel for rel, _ in src.files}
    bins = {r[:-4] for r in rels if r.endswith(".bin")}
    idxs = {r[:-4] for r in rels if r.endswith(".idx")}
    for prefix in sorted(bins ^ idxs):
        have, need = (".bin", ".idx") if prefix in bins else (".idx", ".bin")
        raise ArtifactError(f"{what} {src.display}: {prefix}{have} has no {prefix}{need}; a Megatron indexed "
                            f"dataset needs both files per prefix")
    if not bins:
        raise ArtifactError(f"{what} {src.display}: no PREFIX.bin + PREFIX.idx pairs found; expected the "
                            f"output of the data prep stage (Megatron indexed dataset)")
    if "blend.json" not in rels:
        raise ArtifactError(f"{what} {src.display}: blend.json is missing; add one naming the prefixes, "
                            f"e.g. [\"1.0\", \"{sorted(bins)[0]}\"]")
    blend = _read_json(src, "blend.json", what)
    prefixes = _blend_prefixes(blend)
    if not prefixes:
        raise ArtifactError(f"{what} {src.display}/blend.json names no dataset prefixes; expected e.g. "
                            f"[\"1.0\", \"{sorted(bins)[0]}\"]")
    by_base: dict[str, list[str]] = {}
    for b in bins:
        by_base.setdefault(b.rsplit("/", 1)[-1], []).append(b)
    for p in prefixes:
        norm = re.sub(r"\.(bin|idx)$", "", p).lstrip("./") if not p.startswith("/") else p
        if norm in bins or len(by_base.get(norm.rsplit("/", 1)[-1], [])) == 1:
            continue
        raise ArtifactError(f"{what} {src.display}/blend.json names prefix {p!r} but there is no "
                            f"{norm.rsplit('/', 1)[-1]}.bin/.idx in the folder; fix blend.json or add the files")
    return {"kind": "megatron-indexed", "pairs": len(bins), "blend_prefixes": prefixes,
            "bytes": sum(s for _, s in src.files)}


# ----------------------------------------------------------------------------- sft data


def _parquet_ok(src: SourceTree, rel: str, size: int) -> bool:
    if size < 12:
        return False
    with src.open(rel) as f:
        head = f.read(4)
        f.seek(size - 4)
        tail = f.read(4)
    return head == b"PAR1" and tail == b"PAR1"


def check_sft_data(src: SourceTree) -> dict[str, Any]:
    what = "sft data"
    splits: dict[str, int] = {}
    stray: list[str] = []
    for rel, size in src.files:
        if not rel.endswith(".parquet"):
            continue
        m = _SPLIT_RE.search(rel)
        if not m:
            stray.append(rel)
            continue
        if not _parquet_ok(src, rel, size):
            raise ArtifactError(f"{what} {src.display}/{rel} is not a Parquet file (no PAR1 magic); "
                                f"re-export the split with pyarrow/datasets")
        split = _SPLITS[m.group(1)]
        splits[split] = splits.get(split, 0) + 1
    if "train" not in splits:
        found = ", ".join(sorted(splits)) or "none"
        hint = f" (unrecognised Parquet files: {', '.join(stray[:3])})" if stray else ""
        raise ArtifactError(f"{what} {src.display}: no train split found (splits: {found}){hint}; expected "
                            f"train.parquet, train-*.parquet or train/*.parquet (+ validation/test)")
    return {"kind": "parquet-splits", "splits": splits, "bytes": sum(s for _, s in src.files)}


# ------------------------------------------------------------------------------ rl data


def check_rl_data(src: SourceTree) -> dict[str, Any]:
    what = "rl data"
    rels = {rel for rel, _ in src.files}
    jsonl = sorted(r for r in rels if r.endswith(".jsonl"))
    if not jsonl:
        raise ArtifactError(f"{what} {src.display}: no *.jsonl files; expected prompt files (one JSON object "
                            f"per line) plus manifest.json")
    if "manifest.json" not in rels:
        raise ArtifactError(f"{what} {src.display}: manifest.json is missing; add one describing the JSONL "
                            f"files, e.g. {{\"files\": [\"{jsonl[0]}\"]}}")
    manifest = _read_json(src, "manifest.json", what)
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{what} {src.display}/manifest.json must be a JSON object")
    listed = manifest.get("files")
    if listed is not None:
        if not isinstance(listed, list):
            raise ArtifactError(f"{what} {src.display}/manifest.json: \"files\" must be a list")
        for item in listed:
            path = item.get("path") if isinstance(item, dict) else item
            if not isinstance(path, str) or path.lstrip("./") not in rels:
                raise ArtifactError(f"{what} {src.display}/manifest.json lists {path!r}, which is not in the "
                                    f"folder; fix the manifest or add the file")
    for rel in jsonl:
        with src.open(rel) as f:
            first = b""
            for _ in range(1000):
                line = f.readline(1 << 20)
                if not line:
                    break
                if line.strip():
                    first = line
                    break
        if not first:
            raise ArtifactError(f"{what} {src.display}/{rel} is empty; expected one JSON object per line")
        try:
            ok = isinstance(json.loads(first), dict)
        except (UnicodeDecodeError, json.JSONDecodeError):
            ok = False
        if not ok:
            raise ArtifactError(f"{what} {src.display}/{rel}: the first line is not a JSON object; expected "
                                f"JSONL (one object per line)")
    return {"kind": "jsonl", "files": jsonl, "bytes": sum(s for _, s in src.files)}


# ------------------------------------------------------------------------------- models


def _safetensors_ok(src: SourceTree, rel: str, size: int) -> str | None:
    """None when the header parses, else what is wrong."""
    if size < 8:
        return "shorter than a safetensors header"
    with src.open(rel) as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n <= 0 or n > 100_000_000 or 8 + n > size:
            return f"bad header length {n}"
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "header is not JSON"
    return None if isinstance(header, dict) else "header is not a JSON object"


def check_hf_model(src: SourceTree) -> dict[str, Any]:
    what = "model"
    sizes = dict(src.files)
    rels = set(sizes)
    if "config.json" not in rels:
        raise ArtifactError(f"{what} {src.display}: config.json is missing; expected a Hugging Face model "
                            f"folder (save_pretrained output)")
    config = _read_json(src, "config.json", what)
    if not isinstance(config, dict):
        raise ArtifactError(f"{what} {src.display}/config.json must be a JSON object")
    if "model.safetensors.index.json" in rels:
        index = _read_json(src, "model.safetensors.index.json", what)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise ArtifactError(f"{what} {src.display}/model.safetensors.index.json has no weight_map")
        shards = sorted(set(map(str, weight_map.values())))
        for shard in shards:
            if shard not in rels:
                raise ArtifactError(f"{what} {src.display}: shard {shard} named in model.safetensors.index.json "
                                    f"is missing")
    elif "model.safetensors" in rels:
        shards = ["model.safetensors"]
    else:
        shards = sorted(r for r in rels if r.endswith(".safetensors") and "/" not in r)
        if not shards:
            torch_bins = sorted(r for r in rels if r.endswith(".bin") or r.endswith(".pt"))
            hint = (f" (found {torch_bins[0]}: re-save with save_pretrained(safe_serialization=True))"
                    if torch_bins else "")
            raise ArtifactError(f"{what} {src.display}: no model.safetensors or sharded safetensors with "
                                f"model.safetensors.index.json{hint}")
    for shard in shards:
        problem = _safetensors_ok(src, shard, sizes[shard])
        if problem:
            raise ArtifactError(f"{what} {src.display}/{shard} is not a valid safetensors file ({problem})")
    tokenizer = sorted(r for r in rels if r in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json"))
    return {"kind": "hf-safetensors", "model_type": config.get("model_type"), "weights": shards,
            "tokenizer": tokenizer, "bytes": sum(sizes.values())}
