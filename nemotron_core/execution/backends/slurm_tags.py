"""The `--comment` tag of every Slurm job we submit, and its job name.

    --job-name nemotron-<recipe>
    --comment nemotron:flow_run=<id>;key=<content key>;job=<job dir name>;server=<id>;user=<name>

`server` and `user` say whose sweeper may cancel the job (owner.py); `job` is unique per
submission, so a job id Slurm reused (ids restart at 1 on a fresh cluster) is never mistaken
for ours, and a submission whose id was lost (orchestrator killed between sbatch and saving the
ref) is found again by comment.
"""

from __future__ import annotations

import re

from nemotron_core.execution import owner

COMMENT_PREFIX = "nemotron:"


def job_name(recipe: str) -> str:
    return "nemotron-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe).strip("-")


def make_comment(*, flow_run_id: str | None, content_key: str | None, tag: str) -> str:
    """The job's tag; `server`/`user` say whose sweeper may cancel it (owner.py)."""

    clean = lambda v: re.sub(r"[^A-Za-z0-9_.:/@+-]", "_", str(v)) if v else ""  # noqa: E731
    return (f"{COMMENT_PREFIX}flow_run={clean(flow_run_id)};key={clean(content_key)};job={clean(tag)};"
            f"server={owner.server_identity()};user={owner.current_user()}")


def parse_comment(comment: str | None) -> dict[str, str] | None:
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    fields = {}
    for part in comment[len(COMMENT_PREFIX):].split(";"):
        k, _, v = part.partition("=")
        fields[k] = v
    return fields


# --------------------------------------------------------------------------- shell
