"""The leptonai v1→v2 shim that lets nemo-run 0.11 import (see nemotron_core/compat.py)."""

from __future__ import annotations

import subprocess
import sys


def run_py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_nemo_run_does_not_import_without_the_shim():
    # Guards the shim's reason to exist: when this starts passing, nemo-run is fixed and
    # nemotron_core/compat.py can go.
    out = run_py("import nemo_run")
    assert out.returncode != 0 and "leptonai.api.v1" in out.stderr


def test_nemo_run_imports_with_the_shim_and_modules_are_shared():
    out = run_py(
        "import sys\n"
        "from nemotron_core.compat import import_nemo_run\n"
        "run = import_nemo_run()\n"
        "from nemo_run.run.ray.job import RayJob\n"
        "from leptonai.api.v1.types.affinity import LeptonResourceAffinity\n"
        "assert sys.modules['leptonai.api.v1.types.affinity'] is sys.modules['leptonai.api.v2.types.affinity']\n"
        "print(run.LocalExecutor.__name__, run.SlurmExecutor.__name__)\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["LocalExecutor", "SlurmExecutor"]


def test_shim_is_idempotent_and_scoped_to_leptonai():
    out = run_py(
        "import sys\n"
        "from nemotron_core.compat import install_leptonai_v1_alias, LeptonV1Alias\n"
        "install_leptonai_v1_alias(); install_leptonai_v1_alias()\n"
        "assert sum(isinstance(f, LeptonV1Alias) for f in sys.meta_path) == 1\n"
        "assert LeptonV1Alias().find_spec('json', None) is None\n"
        "print('ok')\n"
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_nemo_run_is_imported_without_torch_and_torch_still_imports_afterwards():
    out = run_py(
        "import sys\n"
        "from nemotron_core.compat import import_nemo_run, _NoTorchInThisThread\n"
        "run = import_nemo_run()\n"
        "from nemo_run.run.ray.job import RayJob\n"
        "print('torch' in sys.modules, any(isinstance(f, _NoTorchInThisThread) for f in sys.meta_path))\n"
        "import torch\n"
        "print(torch.tensor([1, 2]).sum().item())\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "3"]


def test_torch_is_skipped_only_in_the_importing_thread():
    out = run_py(
        "import threading\n"
        "from nemotron_core.compat import _NoTorchInThisThread\n"
        "skip = _NoTorchInThisThread()\n"
        "got = []\n"
        "t = threading.Thread(target=lambda: got.append(skip.find_spec('torch', None)))\n"
        "t.start(); t.join()\n"
        "try:\n"
        "    skip.find_spec('torch', None)\n"
        "except ModuleNotFoundError as e:\n"
        "    got.append(e.name)\n"
        "print(got, skip.find_spec('numpy', None))\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[None, 'torch'] None"
