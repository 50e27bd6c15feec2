"""Artifact names, aliases and refs: parsing and validation (no I/O).

A ref names one artifact version, or a moving pointer to one:

    nano3-sft-model          the newest version (same as `:latest`)
    nano3-sft-model:v3       version 3 (pinned; the fsspec backend numbers from v1, W&B from v0)
    nano3-sft-model:best     whatever the alias `best` points at now

Names and aliases are 1-128 characters of `A-Z a-z 0-9 . _ -`, starting with a letter
or digit. An alias may not look like a version (`v12`), so `name:v12` is never
ambiguous. `latest` is a derived alias (always the newest live version) and cannot be
set or removed by hand. Every malformed input raises `ArtifactError` with a one-line
message; nothing else escapes (property-tested).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nemotron_core.errors import ArtifactError
from nemotron_core.secrets import secret_values

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION = re.compile(r"v([0-9]+)")
LATEST = "latest"

REF_FORMS = "NAME, NAME:vN or NAME:ALIAS (e.g. nano3-sft-model:v3)"


def check_no_secret(kind: str, value: str) -> None:
    """A token pasted where a name or root belongs is refused: those are printed (plans, listings) and become
    file names, where no secret may land."""
    for secret, var in secret_values().items():
        if secret in value:
            raise ArtifactError(f"invalid {kind}: it holds the value of the secret ${var}; pick a plain name")


def check_name(name: object) -> str:
    """Return `name` if it is a valid artifact name, else raise ArtifactError."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ArtifactError(
            f"invalid artifact name {name!r}: use 1-128 characters of A-Z a-z 0-9 . _ - "
            f"starting with a letter or digit (e.g. nano3-sft-model)"
        )
    check_no_secret("artifact name", name)
    return name


def check_alias(alias: object, *, allow_latest: bool = False) -> str:
    """Return `alias` if it can be set by hand, else raise ArtifactError."""
    if not isinstance(alias, str) or not _TOKEN.fullmatch(alias):
        raise ArtifactError(
            f"invalid alias {alias!r}: use 1-128 characters of A-Z a-z 0-9 . _ - "
            f"starting with a letter or digit (e.g. best, prod)"
        )
    if _VERSION.fullmatch(alias):
        raise ArtifactError(f"invalid alias {alias!r}: it looks like a version; pick a name such as best or prod")
    if alias == LATEST and not allow_latest:
        raise ArtifactError("alias 'latest' is derived (always the newest version) and cannot be moved by hand; "
                            "use another alias such as best or prod")
    check_no_secret("alias", alias)
    return alias


@dataclass(frozen=True)
class Ref:
    """A parsed ref: `version` set for `name:vN`, else `alias` (default latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def pinned(self) -> bool:
        return self.version is not None

    @property
    def selector(self) -> str:
        return f"v{self.version}" if self.version is not None else (self.alias or LATEST)

    def __str__(self) -> str:
        return f"{self.name}:{self.selector}"


def parse_ref(ref: object) -> Ref:
    """Parse "name", "name:v3" or "name:alias"; raise ArtifactError on anything else."""
    if not isinstance(ref, str):
        raise ArtifactError(f"invalid artifact ref {ref!r}: expected a string, {REF_FORMS}")
    text = ref.strip()
    name, sep, selector = text.partition(":")
    if not name:
        raise ArtifactError(f"invalid artifact ref {ref!r}: missing the name; expected {REF_FORMS}")
    try:
        check_name(name)
    except ArtifactError:
        raise ArtifactError(f"invalid artifact ref {ref!r}: bad name {name!r}; expected {REF_FORMS}") from None
    if not sep:
        return Ref(name, alias=LATEST)
    match = _VERSION.fullmatch(selector)
    if match:
        digits = match.group(1)
        if len(digits) > 9 or digits != str(int(digits)):
            raise ArtifactError(f"invalid artifact ref {ref!r}: versions are v1, v2, ... (no leading zeros)")
        return Ref(name, version=int(digits))
    if not selector or not _TOKEN.fullmatch(selector):
        raise ArtifactError(f"invalid artifact ref {ref!r}: bad version/alias {selector!r}; expected {REF_FORMS}")
    return Ref(name, alias=selector)


def pinned_ref(name: str, version: int) -> str:
    return f"{name}:v{version}"
