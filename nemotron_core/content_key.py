"""Content keys: what a stage's output depends on, as one digest.

A stage is cached, re-attached and deduplicated by its content key:

    key = sha256(recipe source digest, resolved train config, container image,
                 digests of the pinned input artifact versions)

- Recipe source: the script itself plus every module of the `recipes` package it imports,
  transitively (found by reading the imports, no code runs), so a fix in the shared trainer
  code reruns the stages that import it, while editing the RL code or another stage's
  script leaves pretraining cached.
- The train config is the resolved one (artifact references already pinned), minus
  keys that say where/how to run rather than what to compute (`output_dir`, `resume`).
- Inputs enter by their manifest digest (O(files), never re-reading their bytes).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Config keys that do not change what a stage computes.
VOLATILE_KEYS = ("output_dir", "resume")

# One ast.parse at a time in this process. CPython 3.11 keeps the AST converter's recursion depth
# per interpreter, not per thread: two threads parsing at once (a thread switch inside the
# converter, e.g. when a garbage collection runs a finalizer) can fail with "SystemError: AST
# constructor recursion depth mismatch". Prefect computes the cache keys of concurrent stage tasks
# in threads of one process (the three evals of a cached nano3-full rerun start together), and a
# key that raises is no key: Prefect stores no result and the next run misses its cache.
_AST_LOCK = threading.Lock()


def _hash_files(h: Any, root: Path, files: list[Path]) -> None:
    for path in sorted(files):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())


def _module_file(root: Path, module: str) -> Path | None:
    """recipes.nano3.common.world -> <root>/recipes/nano3/common/world.py (or its __init__.py)."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


# Import statements without parsing the whole file: ast.parse of a recipe tree (~25 files) takes
# ~50 ms, a tenth of a dry run; this scan takes ~5. Strings and comments match whole, so
# an `import` inside one is skipped; `import` is a hard keyword, so outside them it always starts
# an import statement, and `from` does when the same logical line reaches `import` over names and
# dots only (not `yield from x`, `raise E from e`). The statements found are parsed together (a
# few lines) and read like the whole file's tree; any that fail to parse (a comment holding `)`
# inside a parenthesised import) send the file to the full parse. tests/core/test_content_key.py
# checks the scan against ast.parse on every Python file of this checkout.
_W = r"(?:[ \t\f]|\\\r?\n)"  # whitespace within one logical line (a backslash continues it)
_STATEMENTS = re.compile(rf"""(?=[\#'"rRbBuUfFi])(?:
    \#[^\r\n]*+
  | [rRbBuUfF]{{0,2}}(?:'''(?:[^'\\]++|\\.|'(?!''))*+'''
                     |\"\"\"(?:[^"\\]++|\\.|"(?!""))*+\"\"\"
                     |'(?:[^'\\\r\n]++|\\.)*+'
                     |"(?:[^"\\\r\n]++|\\.)*+")
  | (?P<stmt>\bfrom\b(?:{_W}|[\w.])*?\bimport\b{_W}*+(?:\([^)]*+\)|\*|(?:{_W}|[\w,])++)
             | \bimport\b(?:{_W}|[\w.,])++)
)""", re.X | re.S)


def _import_tree(source: str) -> ast.Module:
    """A tree holding the source's import statements (all of them, wherever they are)."""
    statements = [m["stmt"] for m in _STATEMENTS.finditer(source) if m["stmt"]]
    with _AST_LOCK:  # see _AST_LOCK
        try:
            return ast.parse("\n".join(statements))
        except SyntaxError:
            return ast.parse(source)


def _imports(path: Path, root: Path, top: str, known: dict[str, Path | None]) -> set[Path]:
    """Files of `top.*` modules that `path` imports (absolute and relative imports).

    `known` holds the module -> file lookups of this digest (the same packages recur in every file).
    """
    try:
        tree = _import_tree(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return set()
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names.append(base)
            names += [f"{base}.{a.name}" for a in node.names]  # `from pkg import module`
    found = set()
    for name in names:
        if name == top or name.startswith(top + "."):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the module and the packages above it
                module = ".".join(parts[:i])
                if module not in known:
                    known[module] = _module_file(root, module)
                f = known[module]
                if f is not None:
                    found.add(f)
    return found


def recipe_source_digest(script: Path) -> str:
    """sha256 of the script and every module of its package tree that it imports, transitively."""
    script = Path(script).resolve()
    root = next((p.parent for p in script.parents if p.name == "recipes"), script.parent)
    files, todo = {script}, [script]
    known: dict[str, Path | None] = {}
    while todo:
        for dep in _imports(todo.pop(), root, "recipes", known):
            if dep not in files:
                files.add(dep)
                todo.append(dep)
    h = hashlib.sha256()
    _hash_files(h, root, sorted(files))
    return h.hexdigest()


def stable_config(train: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in train.items() if k not in VOLATILE_KEYS}


def content_key(*, recipe: str, source_digest: str, train_config: Mapping[str, Any], image: str | None,
                inputs: Mapping[str, str]) -> str:
    """The stage's content key (64 hex chars). `inputs` maps pinned ref -> manifest digest."""
    payload = {
        "recipe": recipe,
        "source": source_digest,
        "config": stable_config(train_config),
        "image": image,
        "inputs": dict(sorted(inputs.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
