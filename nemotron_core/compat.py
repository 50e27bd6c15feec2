"""Import shims for third-party breakage. Import `nemo_run` only through `import_nemo_run()`.

nemo-run 0.11.1 imports `leptonai.api.v1.types...` at import time (its Lepton executor),
but leptonai 0.47.x ships those modules as `leptonai.api.v2...`. Older leptonai that
still has `api.v1` pins starlette<1, which cannot sit beside prefect 3.9. So, before
nemo_run is imported, we serve `leptonai.api.v1[.x]` as the installed `leptonai.api.v2[.x]`
(only when v1 is genuinely missing). Drop this when nemo-run imports leptonai v2 itself.

Also, `import_nemo_run()` keeps torch out of that import (see its docstring): the flow
process that only builds executors stays at about half the memory.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from types import ModuleType
from typing import Any

from nemotron_core.paths import state_env

_V1, _V2 = "leptonai.api.v1", "leptonai.api.v2"


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:  # the target module is already executed
        pass


class LeptonV1Alias(importlib.abc.MetaPathFinder):
    """Resolves `leptonai.api.v1...` to the same-named module under `leptonai.api.v2`."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _V1 and not fullname.startswith(_V1 + "."):
            return None
        target_name = _V2 + fullname[len(_V1):]
        if importlib.util.find_spec(target_name) is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(target_name), is_package=True)


def install_leptonai_v1_alias() -> bool:
    """Install the alias when leptonai has v2 but not v1. Returns True if installed."""
    if any(isinstance(f, LeptonV1Alias) for f in sys.meta_path):
        return True
    try:
        if importlib.util.find_spec(_V2) is None:
            return False
        if importlib.util.find_spec(_V1) is not None:
            return False
    except ModuleNotFoundError:  # leptonai not installed at all: nothing to fix
        return False
    # First in line, so every v1 submodule is the v2 module object itself (no duplicate copies).
    sys.meta_path.insert(0, LeptonV1Alias())
    return True


class _NoTorchInThisThread(importlib.abc.MetaPathFinder):
    """Makes `import torch` fail (ModuleNotFoundError) in one thread while installed."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "torch" and threading.get_ident() == self.thread:
            raise ModuleNotFoundError("torch is not imported with nemo_run (nemotron_core.compat)", name="torch")
        return None


def import_nemo_run() -> ModuleType:
    """`import nemo_run as run`, with the leptonai shim applied first.

    nemo-run 0.11's YAML serializer imports torch only to register a representer for
    `torch.dtype`, inside `try: ... except ModuleNotFoundError`. The flow process that builds
    executors never serializes a dtype (our configs are plain YAML), and torch would make it
    the largest thing in that process (measured: prefect + nemo_run 344 MB with torch, 150 MB
    without; benchmarks/README.md, orchestrator_rss). So torch is skipped for this import only,
    in this thread only; a later `import torch` anywhere works as usual.
    """
    install_leptonai_v1_alias()
    # Harmless when nemo_run or torch is already imported: sys.modules answers before any finder.
    skip = _NoTorchInThisThread()
    sys.meta_path.insert(0, skip)
    try:
        import nemo_run  # lazy: nemo_run is heavy; imported here with torch skipped
    finally:
        sys.meta_path.remove(skip)
    return nemo_run


def nemo_run() -> ModuleType:
    """`import nemo_run` (through the leptonai shim) with its home under the state folder.

    The one handle the execution layer uses: nemo-run keeps experiment records in
    NEMORUN_HOME (default ~/.nemo_run), which must stay under the project state folder."""
    os.environ.setdefault("NEMORUN_HOME", state_env()["NEMORUN_HOME"])
    return import_nemo_run()
