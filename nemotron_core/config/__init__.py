"""The config pipeline: YAML + overrides → job config with provenance → train.yaml.

    train = parse_config(spec.config_dir, "tiny", ["train.lr=1e-3", "+x.y=2", "~z"])
    job = build_job_config(train, spec=spec, mode="local", profile=profile, ...)
    job_path, train_path = save_configs(job, extract_train_config(job, for_remote=False), job_dir)

Imports are lazy (PEP 562) so that `import nemotron_core.config` costs nothing until used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # These two also take the seed's arguments (seed_forms.py): parse_config(ctx, config_dir, default).
    "parse_config": "nemotron_core.config.seed_forms",
    "load_yaml": "nemotron_core.config.loader",
    "apply_overrides": "nemotron_core.config.overrides",
    "build_job_config": "nemotron_core.config.seed_forms",
    "extract_train_config": "nemotron_core.config.job",
    "save_configs": "nemotron_core.config.job",
    "generate_job_dir": "nemotron_core.config.job",
    "set_artifact_lookup": "nemotron_core.config.resolvers",
    "register_resolvers": "nemotron_core.config.resolvers",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
