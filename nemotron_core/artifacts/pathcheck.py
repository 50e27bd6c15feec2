"""Path checks for everything the registry reads from untrusted places.

A shared registry's records, upload folders and source trees are written by other
people: a path taken from them is data, and must name something *under* its root.

    check_rel_path("a/b.bin", what)      -> "a/b.bin"    ('..', '.', '', absolute, control chars: refused)
    check_component("2025...-abc", what) -> the same     (one folder name, no separators)
    under_root(root, root / "a/b")       -> True         (after resolving every symlink)

Each refusal is an ArtifactError whose message is one line naming `what`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from nemotron_core.errors import ArtifactError

# Upload ids are "<utc time>-<host hash>-<pid>-<random>"; anything of these characters is a
# single folder name, never '.', '..' or a path.
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# Control characters would let a file name forge manifest lines ("path\tsize\thash\n") or
# terminal output; no dataset or checkpoint needs them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_rel_path(rel: object, what: str) -> str:
    """`rel` if it is a relative '/'-separated path that stays below its root, else ArtifactError."""
    if not isinstance(rel, str) or not rel:
        raise ArtifactError(f"{what}: expected a relative path, got {rel!r}")
    if _CONTROL.search(rel):
        raise ArtifactError(f"{what}: path {rel!r} contains control characters")
    if rel.startswith("/"):
        raise ArtifactError(f"{what}: path {rel!r} is absolute; only paths below the artifact root are allowed")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ArtifactError(f"{what}: path {rel!r} has an empty, '.' or '..' component; only plain paths below "
                            f"the artifact root are allowed")
    return rel


def check_component(name: object, what: str) -> str:
    """`name` if it is one plain folder name (letters, digits, . _ -), else ArtifactError."""
    if not isinstance(name, str) or not _COMPONENT.fullmatch(name):
        raise ArtifactError(f"{what}: {name!r} is not a plain folder name (A-Z a-z 0-9 . _ -, no '/' or '..')")
    return name


def under_root(root: Path, path: Path, *, follow_last: bool = True) -> bool:
    """Does `path` stay under `root` (an already resolved folder) once symlinks are resolved?
    With follow_last=False the last component itself may be a symlink (it is acted on, not followed)."""
    if follow_last:
        real = os.path.realpath(path)
    else:
        real = os.path.join(os.path.realpath(path.parent), path.name)
    base = str(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)
