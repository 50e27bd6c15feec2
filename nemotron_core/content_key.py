"""Content keys: what a stage's output depends on, as one digest.

A stage is cached, re-attached and deduplicated by its content key:

    key = sha256(recipe source digest, resolved train config, container image,
                 digests of the pinned input artifact versions)

- Recipe source: the script itself plus every shared package beside the stages
  (`recipes/nano3/<pkg>/**.py` for each folder that is not a `stage*` folder), so a fix
  in the shared trainer code reruns the stages that import it, while editing one stage
  script leaves the other stages cached.
- The train config is the resolved one (artifact references already pinned), minus
  keys that say where/how to run rather than what to compute (`output_dir`, `resume`).
- Inputs enter by their manifest digest (O(files), never re-reading their bytes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Config keys that do not change what a stage computes.
VOLATILE_KEYS = ("output_dir", "resume")


def _hash_files(h, root: Path, files: list[Path]) -> None:
    for path in sorted(files):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())


def recipe_source_digest(script: Path) -> str:
    """sha256 of the script and of the shared (non-stage) packages of its recipe family."""
    script = Path(script).resolve()
    family = script.parent.parent  # recipes/nano3
    files = [script]
    for pkg in sorted(p for p in family.iterdir() if p.is_dir() and not p.name.startswith(("stage", "_", "."))):
        files.extend(p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts)
    if (family / "__init__.py").is_file():
        files.append(family / "__init__.py")
    h = hashlib.sha256()
    _hash_files(h, family, files)
    return h.hexdigest()


def stable_config(train: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in train.items() if k not in VOLATILE_KEYS}


def content_key(*, recipe: str, source_digest: str, train_config: Mapping[str, Any], image: str | None,
                inputs: Mapping[str, str]) -> str:
    """The stage's content key (64 hex chars). `inputs` maps pinned ref -> manifest digest."""
    payload = {
        "recipe": recipe,
        "source": source_digest,
        "config": stable_config(train_config),
        "image": image,
        "inputs": dict(sorted(inputs.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
