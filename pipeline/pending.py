"""Dry runs on a state folder where inputs are not published yet: who produces each one.

The toolkit's `${art:}` resolver accepts a `pending(ref) -> str | None` callback in dry runs
(nemotron_core/config/resolvers.py); this module builds it from the registry and the stage
table, so an unpublished `nano3-pretrain-data` reads as
`<pending: nano3-pretrain-data:latest, produced by `nemotron nano3 data prep pretrain`>`.
Real runs pass no callback: an unpublished input fails in one line, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nemotron_core.artifacts.refs import parse_ref
from nemotron_core.errors import ArtifactError
from pipeline.stages import STAGES


def producer_of(name: str) -> str:
    """How the artifact `name` comes to exist: the stage command that publishes it, or a hint."""
    for stage in STAGES.values():
        if stage.output == name and stage.command:
            return f"produced by `nemotron nano3 {' '.join(stage.command)}`"
    return "not published yet (publish or import it)"


def pending_check(registry: Any, rebuilt: Mapping[str, str] | None = None) -> Callable[[str], str | None]:
    """`ref -> None` when `ref`'s artifact has a published version, else who produces it.

    `rebuilt` (artifact name -> stage name) lists outputs that the plan rebuilds first (`nano3 pipe`):
    those are pending even when an older version exists, since the stage will bind the new one.
    Only an artifact with no live version is pending; a wrong version or alias of a published
    artifact is still the lookup's one-line error.
    """
    rebuilt = dict(rebuilt or {})

    def check(ref: str) -> str | None:
        try:
            name = parse_ref(ref).name
        except ArtifactError:
            return None  # a malformed ref: the lookup refuses it in one line
        if name in rebuilt:
            return f"built by stage {rebuilt[name]} of this plan ({producer_of(name)})"
        try:
            published = bool(registry.live_versions(name))
        except ArtifactError:
            return None  # an unreadable record: the lookup names the problem
        return None if published else producer_of(name)

    return check
