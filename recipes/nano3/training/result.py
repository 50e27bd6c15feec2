"""RESULT.json for a trainer: what was trained, from what, and how it ended.

The caller registers output_dir as the model artifact (nano3-pretrain-model /
nano3-sft-model) and records lineage from `inputs` (each input's path plus the digest
of its RESULT.json / config.json: cheap, never a hash of the weights or token files)
and metrics from `metrics`.
"""

from __future__ import annotations

from pathlib import Path

from recipes.nano3.common import outputs

from . import model as modellib
from . import settings

IDENTITY_FILES = ("RESULT.json", "config.json", "model/config.json", "blend.json")


def describe_input(path: Path) -> dict:
    """{"path", "sha256": {file: digest}, + name/artifact/config_digest of its RESULT.json} for an input folder."""
    import json

    record: dict = {"path": str(path), "sha256": {rel: outputs.sha256_file(path / rel) for rel in IDENTITY_FILES
                                                  if (path / rel).is_file()}}
    result = path / "RESULT.json"
    if result.is_file():
        try:
            upstream = json.loads(result.read_text())
            record.update({k: upstream[k] for k in ("name", "artifact", "config_digest") if k in upstream})
        except (ValueError, TypeError):
            pass
    return record


def write(job, artifact: str, summary: dict, inputs: dict[str, Path]) -> dict:
    """Write output_dir/RESULT.json (last; rank 0 only) and return it."""
    cfg = job.cfg
    record = {
        "name": job.name, "artifact": artifact,
        "config_digest": settings.digest(cfg), "config": {k: v for k, v in cfg.items() if k != "output_dir"},
        "inputs": {name: describe_input(Path(p)) for name, p in inputs.items()},
        "metrics": summary,
        "model": {**modellib.describe(job.model), "path": "model"},
        "outputs": {"model": "model", "checkpoints": "checkpoints", "metrics": cfg["log"]["metrics_file"]},
        "runtime": job.rt.describe(),
    }
    outputs.finish(job.out, record)
    return record
