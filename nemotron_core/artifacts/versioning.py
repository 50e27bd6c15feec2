"""Version allocation: the next number is claimed by creating its record, exclusively.

    N = 1 + highest vK.json under <name>/versions/   (live records and tombstones)
    loop: create_exclusive(versions/vN.json, record(N))  -> done
          (exists: another writer took N)              -> N += 1 (re-list every 8 tries)

The record is the claim: a version number exists exactly when its complete record
exists, so there is no lock to leak, no half-claimed number, and a writer killed at
any point leaves no visible version. Two writers racing for N both try the same key;
the store's atomic create-if-absent (link(2) locally, `If-None-Match: *` on S3, see
storage.py) lets exactly one win, and the loser moves on to N+1 - so concurrent
publishers get distinct versions and nothing is overwritten. Numbers are monotonic
and never reused, because garbage-collected versions keep a tombstone record.

Deleting (gc) writes `versions/vN.deleted` first, then overwrites vN.json with a
tombstone, then removes the files: a single listing of versions/ tells live from
deleted, and a gc killed midway leaves the version deleted (the next gc finishes it).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from nemotron_core.errors import ArtifactError

from .storage import Store

_RECORD = re.compile(r"v([1-9][0-9]*)\.json")
_DELETED = re.compile(r"v([1-9][0-9]*)\.deleted")
MAX_TRIES = 1000


def record_path(name: str, version: int) -> str:
    return f"{name}/versions/v{version}.json"


def deleted_marker_path(name: str, version: int) -> str:
    return f"{name}/versions/v{version}.deleted"


def scan_versions(store: Store, name: str) -> tuple[list[int], set[int]]:
    """(every version number with a record, ascending; the deleted ones) from one listing."""
    numbers, deleted = [], set()
    for entry in store.listdir(f"{name}/versions"):
        m = _RECORD.fullmatch(entry)
        if m:
            numbers.append(int(m.group(1)))
        m = _DELETED.fullmatch(entry)
        if m:
            deleted.add(int(m.group(1)))
    return sorted(numbers), deleted


def listed_versions(store: Store, name: str) -> list[int]:
    """Version numbers that have a record (live or tombstone), ascending."""
    return scan_versions(store, name)[0]


def claim_version(store: Store, name: str, make_record: Callable[[int], bytes]) -> int:
    """Publish `make_record(N)` as the first free vN; return N."""
    version = 0
    for attempt in range(MAX_TRIES):
        if attempt % 8 == 0:
            existing = listed_versions(store, name)
            version = max(version, (existing[-1] if existing else 0) + 1)
        if store.create_exclusive(record_path(name, version), make_record(version)):
            return version
        version += 1
    raise ArtifactError(f"publish {name}: could not claim a version after {MAX_TRIES} tries "
                        f"(too many concurrent writers?); retry")
