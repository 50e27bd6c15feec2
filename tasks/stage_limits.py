"""At most N runs of a stage at once, server-wide: Prefect's tag-based task concurrency limits.

Every stage task carries the tag `nano3-stage:<stage>` (tasks/policy.py). A concurrency limit
on that tag (`prefect concurrency-limit create nano3-stage:pretrain 2`) makes Prefect's task
engine take a slot before the task starts and give it back when it ends, whichever flow run,
worker or login node runs it; the others wait for a slot before they submit anything.
A flow process killed while holding a slot frees it when its lease runs out (60 s: the
engine renews it while the task runs, however long the stage takes).

The limits are declared in deployments/prefect.yaml, as the `set_stage_limits` step of its
`build:` section, so `prefect deploy --all` applies them: a stage with a number gets that limit
(created or updated), a stage left out or set to null gets none (an existing one is removed).
"""

from __future__ import annotations

from typing import Any

from nemotron_core.errors import ConfigError, did_you_mean
from pipeline.stages import STAGES

TAG_PREFIX = "nano3-stage:"


def stage_tag(stage: str) -> str:
    """The tag every task run of `stage` carries ("nano3-stage:pretrain")."""
    return f"{TAG_PREFIX}{stage}"


def check_limits(limits: Any) -> dict[str, int | None]:
    """{stage: limit or None} for every stage; one-line ConfigError for anything else."""
    where = "deployments/prefect.yaml: set_stage_limits"
    if limits is None:
        limits = {}
    if not isinstance(limits, dict):
        raise ConfigError(f"{where}: `limits` must be a mapping of stage to a number, got {type(limits).__name__}")
    checked: dict[str, int | None] = dict.fromkeys(STAGES)
    for stage, value in limits.items():
        if stage not in STAGES:
            raise ConfigError(f"{where}: unknown stage {str(stage)!r}{did_you_mean(str(stage), STAGES)}; "
                              f"stages: {', '.join(STAGES)}")
        if value is None or value == "":
            continue
        # YAML and "{{ $VAR }}" templating hand over strings: "2" is 2; bools are not numbers.
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
            raise ConfigError(f"{where}: limits.{stage} = {str(value)!r} is not a whole number >= 1 "
                              f"(use null for no limit)")
        checked[stage] = int(text)
    return checked


def set_stage_limits(limits: Any = None) -> dict[str, Any]:
    """prefect.yaml step: make the server's stage limits what `limits` says; returns them."""
    from prefect.client.orchestration import get_client  # lazy: prefect.client.orchestration is a heavy import
    from prefect.exceptions import ObjectNotFound  # lazy: prefect.exceptions is a heavy import

    checked = check_limits(limits)  # all of it is checked before anything changes on the server
    with get_client(sync_client=True) as client:
        for stage, limit in checked.items():
            if limit is not None:
                client.create_concurrency_limit(tag=stage_tag(stage), concurrency_limit=limit)  # an upsert
                continue
            try:
                client.delete_concurrency_limit_by_tag(stage_tag(stage))
            except ObjectNotFound:
                pass
    return {"stage_limits": {stage: limit for stage, limit in checked.items() if limit is not None}}


def read_stage_limits() -> dict[str, int]:
    """{stage: limit} as the server has them now (stages without a limit left out)."""
    from prefect.client.orchestration import get_client  # lazy: prefect.client.orchestration is a heavy import

    with get_client(sync_client=True) as client:
        found = client.read_concurrency_limits(limit=200, offset=0)
    return {c.tag.removeprefix(TAG_PREFIX): c.concurrency_limit for c in found if c.tag.startswith(TAG_PREFIX)}
