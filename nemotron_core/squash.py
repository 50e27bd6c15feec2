"""`ensure_squashed_image`, where the seed keeps it (`nemo_runspec.squash`).

The enroot import itself is execution/squash.py; this name also takes the seed's arguments
`(tunnel, image, remote_job_dir, env, force=...)` (execution/seed_forms.py).
"""

from __future__ import annotations

from nemotron_core.execution.seed_forms import ensure_squashed_image

__all__ = ["ensure_squashed_image"]
