"""Packagers: what code a remote job gets, as nemo-run `Packager`s.

    SelfContainedPackager  the recipe script plus the project modules it imports,
                           transitively (found by reading `import` statements): the
                           toolkit it needs, not the repo.
    CodePackager           the repo's working tree (tracked and untracked-but-not-ignored
                           files, uncommitted edits included) minus `excludes`.
    "git"                  nemo-run's GitArchivePackager (committed HEAD only), reused as is.
    "none"                 nemo-run's base Packager: nothing shipped; the job's code dir
                           is a link to this checkout (same filesystem, no container).

Chosen by the profile's `packager = "self-contained" | "code" | "git" | "none"`; without
it, Ray recipes (runspec `launch = "ray"`, whose workers import across the repo) get
CodePackager and everything else SelfContainedPackager. `code_excludes = [...]` adds
glob patterns to CodePackager's defaults.

Each packager writes `<job dir>/<name>.tar.gz` with paths relative to the project root,
so `<root>/recipes/x/train.py` becomes `<job dir>/code/recipes/x/train.py`; jobs.py
unpacks it there and remaps command-line paths the same way. We do not go through
nemo-run's `executor.package()` (it needs an Experiment and shells out to `tar`/`find`
with unquoted paths); the Packager interface (`package(path, job_dir, name) -> tar`)
is the same, so nemo-run's own packagers plug in unchanged.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemotron_core.compat import nemo_run
from nemotron_core.errors import ProfileError, did_you_mean, one_of
from nemotron_core.execution.profile_keys import PACKAGERS, packager_choice
from nemotron_core.paths import PACKAGE_ROOT
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec

_run = nemo_run()
if TYPE_CHECKING:
    from nemo_run import Packager  # an untyped package: Any to the type checker
else:
    Packager = _run.Packager

DEFAULT_EXCLUDES = (".git", ".venv", "venv", ".state", ".nemotron-state", "__pycache__", "*.pyc", ".pytest_cache",
                    ".hypothesis", "wandb", "build", "dist", "*.egg-info", ".mypy_cache", ".ruff_cache", "node_modules",
                    "*.tar.gz", "*.sqsh", "env.toml", "secrets.env", ".env")


# --------------------------------------------------------------------------- file selection


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1])
    return ".".join(parts[:-1])


def _imports(root: Path, path: Path) -> set[str]:
    """Dotted names this file imports (absolute, relative resolved; `from a import b` → a and a.b)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return set()
    package = _package_of(root, path) if path.is_relative_to(root) else ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def self_contained_files(script: Path, root: Path = PACKAGE_ROOT) -> list[Path]:
    """The script and the project modules it imports, transitively, with their packages' __init__.py."""
    root, script = Path(root).resolve(), Path(script).resolve()
    found: set[Path] = {script}
    todo = [script]
    while todo:
        current = todo.pop()
        for dotted in _imports(root, current):
            parts = dotted.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c needs a/__init__.py, a/b/__init__.py, a/b/c.py
                f = _module_file(root, ".".join(parts[:i]))
                if f is None:
                    break
                if f not in found:
                    found.add(f)
                    todo.append(f)
    for f in list(found):  # data files next to shipped modules (configs, templates)
        if f.name == "__init__.py" and f.parent != root:
            for data in f.parent.iterdir():
                if data.suffix in (".yaml", ".yml", ".json", ".toml", ".j2", ".jinja") and data.is_file():
                    found.add(data)
    return sorted(p for p in found if p.is_relative_to(root))


def _excluded(rel: str, excludes: tuple[str, ...]) -> bool:
    parts = rel.split("/")
    return any(fnmatch.fnmatch(rel, pat) or any(fnmatch.fnmatch(p, pat) for p in parts) for pat in excludes)


def code_files(root: Path = PACKAGE_ROOT, excludes: tuple[str, ...] = DEFAULT_EXCLUDES) -> list[Path]:
    """The working tree git knows about (tracked + untracked-not-ignored), minus excludes.

    Outside a git repo: every file under root, minus excludes.
    """
    root = Path(root).resolve()
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, timeout=60, check=True).stdout
        rels = sorted({r for r in out.decode().split("\0") if r})
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        rels = []
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            dirnames[:] = [d for d in dirnames if not _excluded(os.path.normpath(os.path.join(rel_dir, d)), excludes)]
            rels.extend(os.path.normpath(os.path.join(rel_dir, f)) for f in filenames)
    files = []
    for rel in rels:
        path = root / rel
        if not _excluded(rel, excludes) and path.is_file() and not path.is_symlink():
            files.append(path)
    return sorted(files)


def write_tar(files: list[Path], root: Path, output: Path) -> Path:
    """A gzipped tar of `files` with names relative to `root` (written to a temp name, then renamed)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for f in files:
            tar.add(f, arcname=str(f.relative_to(root)), recursive=False)
    os.replace(tmp, output)
    return output


# --------------------------------------------------------------------------- packagers


@dataclass(kw_only=True)
class SelfContainedPackager(Packager):
    """The recipe script and the project modules it imports; nothing else of the repo."""

    script_path: str
    root: str = str(PACKAGE_ROOT)

    def files(self) -> list[Path]:
        return self_contained_files(Path(self.script_path), Path(self.root))

    def package(self, path: Path, job_dir: str, name: str) -> str:
        return str(write_tar(self.files(), Path(self.root).resolve(), Path(job_dir) / f"{name}.tar.gz"))


@dataclass(kw_only=True)
class CodePackager(Packager):
    """The repo's working tree minus excludes (uncommitted edits included)."""

    root: str = str(PACKAGE_ROOT)
    excludes: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDES))

    def files(self) -> list[Path]:
        return code_files(Path(self.root), tuple(self.excludes))

    def package(self, path: Path, job_dir: str, name: str) -> str:
        return str(write_tar(self.files(), Path(self.root).resolve(), Path(job_dir) / f"{name}.tar.gz"))


def choose_packager(profile: Profile | None, spec: Runspec) -> Packager:
    """The packager the profile asks for, else the runspec's default (see module doc)."""
    extra = (profile.get("code_excludes") or []) if profile is not None else []
    return make_packager(packager_choice(profile, spec), script_path=str(spec.script_path), excludes=tuple(extra))


def make_packager(choice: str, *, script_path: str, excludes: tuple[str, ...] = ()) -> Packager:
    """The packager named by profile_keys.packager_choice; `excludes` add to CodePackager's defaults."""
    if choice == "self-contained":
        return SelfContainedPackager(script_path=script_path)
    if choice == "code":
        return CodePackager(excludes=[*DEFAULT_EXCLUDES, *excludes])
    if choice == "git":
        return _run.GitArchivePackager(basepath=str(PACKAGE_ROOT))
    if choice == "none":
        return Packager()
    raise ProfileError(f"packager = {choice!r} is not one of {one_of(PACKAGERS)}{did_you_mean(choice, PACKAGERS)}")


def ships_code(packager: Any) -> bool:
    """False for nemo-run's base Packager (nothing shipped: run from this checkout)."""
    return type(packager) is not Packager
