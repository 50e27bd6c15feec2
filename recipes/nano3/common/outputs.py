"""Writing outputs safely: atomic files, canonical JSON, RESULT.json last, file hashes.

Every file a data-prep script writes goes to `<name>.tmp-<pid>` first and is renamed
into place, so a killed run never leaves a half-written file under its final name.
`RESULT.json` is the completion marker: written last, only on success; the caller
registers the output folder as an artifact only when it exists.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

RESULT = "RESULT.json"
TMP_TAG = ".tmp-"


def tmp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_TAG}{os.getpid()}")


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def to_json(value: Any) -> str:
    """Stable, human-readable JSON (sorted keys, 1-space indent, trailing newline)."""
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def write_json(path: Path, value: Any) -> None:
    write_bytes(path, to_json(value).encode())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)
    write_bytes(path, text.encode())


def clean_tmp(folder: Path) -> int:
    """Remove temp files a killed run left behind; returns how many."""
    n = 0
    if folder.is_dir():
        for p in folder.rglob(f"*{TMP_TAG}*"):
            if p.is_file():
                p.unlink()
                n += 1
    return n


def invalidate(output_dir: Path) -> None:
    """Drop a RESULT.json left by an earlier run: from now on the folder is not complete."""
    (output_dir / RESULT).unlink(missing_ok=True)


def start(output_dir: Path) -> None:
    """Prepare output_dir for a (re)run: no RESULT.json, no leftover temp files."""
    output_dir.mkdir(parents=True, exist_ok=True)
    invalidate(output_dir)
    clean_tmp(output_dir)


def finish(output_dir: Path, result: dict) -> None:
    """Write RESULT.json: the last file of a successful run."""
    write_json(output_dir / RESULT, result)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tree_hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256} for every file under folder (tests, manifests)."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def write_parquet(path: Path, columns: dict, types: dict | None = None) -> None:
    """Write a Parquet file atomically; columns: name -> values, types: name -> pyarrow type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = types or {}
    table = pa.table({k: pa.array(v, type=types.get(k)) for k, v in columns.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def result_record(*, name: str, artifact: str, cfg: dict, inputs: dict, stats: dict, files: dict) -> dict:
    """The RESULT.json body shared by the data-prep scripts (deterministic: no times, no paths of outputs)."""
    from .config import config_digest, content

    return {"name": name, "artifact": artifact, "config_digest": config_digest(cfg), "config": content(cfg),
            "inputs": {n: i["public"] for n, i in inputs.items()}, "stats": stats, "outputs": files}


def print_summary(summary: dict) -> None:
    """The last stdout line of a run: `summary: {json}` (timings live here, not in the outputs)."""
    print("summary:", json.dumps(summary, sort_keys=True, separators=(",", ":")), flush=True)
