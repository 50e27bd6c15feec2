"""The `${art:NAME[:VERSION|ALIAS],FIELD}` lookup for the config pipeline.

    from nemotron_core.config.resolvers import set_artifact_lookup
    set_artifact_lookup(config_lookup(open_registry(cfg)))

`fn(ref, field) -> (value, pinned_ref)`: resolves `ref` to exactly one version now and
returns the field of that version plus "name:vN", which job.yaml records, so a stage
never silently picks up a newer `latest` later. The lookup itself keeps no memo (a
long-lived worker must see new versions for the next job); pinning within one config
pass is done by the config pipeline, which passes the pinned ref back in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nemotron_core.errors import ArtifactError

from .refs import parse_ref
from .registry import ArtifactRegistry

ArtifactLookup = Callable[[str, str], tuple[Any, str]]


def config_lookup(registry: ArtifactRegistry) -> ArtifactLookup:
    def lookup(ref: str, field: str) -> tuple[Any, str]:
        parsed = parse_ref(ref)
        if not isinstance(field, str) or not field.strip():
            raise ArtifactError(f"${{art:{ref},...}}: missing the field; e.g. ${{art:{parsed.name},path}}")
        version = registry.resolve(parsed)
        return version.field(field.strip()), version.ref

    lookup.registry = registry  # type: ignore[attr-defined]
    return lookup
