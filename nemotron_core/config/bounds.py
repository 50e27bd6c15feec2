"""Bounds on what a config's `${...}` interpolations may expand to, checked before resolving.

OmegaConf resolves `${a.b}` references recursively and concatenates strings, so a small
config can ask for a chain of thousands of references (a RecursionError after seconds) or
for a string that doubles at every level (`l1: ${l0}${l0}`, `l2: ${l1}${l1}`, ...: gigabytes
written into job.yaml). `check_interpolations` walks the unresolved config once, memoized,
and refuses both in one line: reference chains (plus the sections they pass through) deeper
than MAX_DEPTH, reference cycles, and values that would expand to more than MAX_CHARS.
The walk reads only node references (`${a.b}`, `${.x}`, `${..x}`); resolver calls
(`${oc.env:X}`, `${art:...}`) count as their own text.
"""

from __future__ import annotations

import re
from typing import Any

from nemotron_core.errors import ConfigError

MAX_DEPTH = 150
MAX_CHARS = 4_000_000
#: An innermost `${...}` without a resolver name: a reference to another node.
_REF = re.compile(r"\$\{\s*(\.*[\w\-]+(?:(?:\.|\[)[\w\-]+\]?)*)\s*\}")


def check_interpolations(raw: Any) -> None:
    """Raise ConfigError if resolving `raw` (a plain dict from to_container(resolve=False)) is unbounded."""
    sizes: dict[tuple, int] = {}
    on_path: set[tuple] = set()

    def node_at(path: tuple) -> tuple[bool, Any]:
        node = raw
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return False, None
        return True, node

    def target(ref: str, here: tuple) -> tuple:
        dots = len(ref) - len(ref.lstrip("."))
        parts = tuple(p for p in re.split(r"[.\[\]]+", ref.lstrip(".")) if p)
        if dots == 0:
            return parts
        base = here[:-1]  # the node's parent: `${.x}` is a sibling, each extra dot one level up
        return base[:max(len(base) - (dots - 1), 0)] + parts

    def size(path: tuple, node: Any, depth: int) -> int:
        if path in sizes:
            return sizes[path]
        if depth > MAX_DEPTH:
            raise ConfigError(f"config key '{_dotted(path)}': interpolations nest deeper than {MAX_DEPTH} levels "
                              f"(a chain of ${{...}} references); shorten the chain")
        if path in on_path:
            raise ConfigError(f"config key '{_dotted(path)}' refers to itself through ${{...}} references")
        on_path.add(path)
        if isinstance(node, dict):
            total = sum(size((*path, str(k)), v, depth + 1) + len(str(k)) + 2 for k, v in node.items())
        elif isinstance(node, list):
            total = sum(size((*path, str(i)), v, depth + 1) + 2 for i, v in enumerate(node))
        elif isinstance(node, str) and "${" in node:
            total = len(node)
            for ref in _REF.findall(node):
                where = target(ref, path)
                found, value = node_at(where)
                if found:
                    total += size(where, value, depth + 1)
        else:
            total = len(str(node))
        on_path.discard(path)
        if total > MAX_CHARS:
            raise ConfigError(f"config key '{_dotted(path)}' would expand to more than {MAX_CHARS:,} characters "
                              f"through ${{...}} references; write the value out instead")
        sizes[path] = total
        return total

    size((), raw, 0)


def _dotted(path: tuple) -> str:
    return ".".join(path) or "<root>"
