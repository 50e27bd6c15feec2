"""Every job the toolkit launches imports the project from its own code root (nemotron_core/execution/code_root.py).

The recipe scripts carry no sys.path lines: the toolkit puts the job's code root first on its
PYTHONPATH. The fixture script runs under `python -S` (no site-packages, so the editable install
cannot answer) and prints its PYTHONPATH and where `recipes.nano3.common.errors` came from; the
test environment holds no PYTHONPATH and one secret, so anything else on the path came from us.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from nemotron_core.execution import execute_local, submit
from nemotron_core.execution.code_root import pythonpath_line, run_with_code_root

from tests.execution.conftest import REPO, slurm, slurm_profile, stage, state  # noqa: F401 (fixtures)

RECIPE = "tests/fixtures/recipes/code_root/code_root.py"
SECRET = "hf_CoDeRoOt_5ecret_77"


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("HF_TOKEN", SECRET)


def reported(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line.startswith(("pythonpath=", "imported=")))


def assert_imports_from(out: dict[str, str], root: str) -> None:
    assert out.get("pythonpath") == root, out  # the code root, and nothing of this host's or a secret
    assert out.get("imported", "").startswith(root + "/recipes/"), out


def test_a_script_without_sys_path_lines_fails_to_import_on_its_own():
    """The control: the same script run bare cannot import the project (so the jobs below prove the toolkit's part)."""
    proc = subprocess.run([sys.executable, "-S", str(REPO / RECIPE), "--config", "x"], capture_output=True, text=True,
                          cwd="/", env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode != 0 and "No module named 'recipes'" in proc.stderr


def test_local_jobs_attached_and_detached_import_from_the_checkout(stage):
    s = stage(RECIPE, '[local]\n', "local")
    echo = io.StringIO()
    assert execute_local(s.plan, s.job_dir, echo=echo) == 0, echo.getvalue()  # the CLI's in-process path
    assert_imports_from(reported(echo.getvalue()), str(REPO))
    s = stage(RECIPE, '[local]\n', "local")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)  # a detached local job (launch.sh)
    status = job.wait(timeout=60)
    assert status.ok, job.logs()
    assert_imports_from(reported(job.logs()), str(REPO))
    assert SECRET not in (s.job_dir / "launch.sh").read_text()


@pytest.mark.slurm
def test_a_slurm_job_imports_from_its_shipped_code_dir(slurm, stage):
    s = stage(RECIPE, slurm_profile(), "slurm")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    status = job.wait(timeout=120)
    assert status.ok, job.logs()
    code = f"{s.job_dir.resolve()}/code"
    assert (s.job_dir / "code/recipes/nano3/common/errors.py").is_file()  # shipped by the self-contained packager
    assert_imports_from(reported(job.logs()), code)  # not this checkout's copy


def test_the_export_line_quotes_the_root_and_keeps_the_jobs_own_entries(tmp_path):
    root = str(tmp_path / "a dir; echo hacked")
    line = pythonpath_line(root)
    out = subprocess.run(["bash", "-c", f'{line}; printf %s "$PYTHONPATH"'], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "PYTHONPATH": "/image/site"})
    assert out.stdout == f"{root}:/image/site" and "hacked" not in out.stdout.replace(root, "")
    out = subprocess.run(["bash", "-c", f'{line}; printf %s "$PYTHONPATH"'], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"]})
    assert out.stdout == root


def test_a_cloud_jobs_command_sets_the_code_root_itself():
    """DGX Cloud, Lepton and SkyPilot run nemo-run's launch script, not ours: the command sets PYTHONPATH."""
    command = run_with_code_root("/nemo_run/code", [sys.executable, "-c", "import os; print(os.environ['PYTHONPATH'])"])
    out = subprocess.run(command, capture_output=True, text=True, env={"PATH": os.environ["PATH"], "PYTHONPATH": "/img"})
    assert out.stdout.strip() == "/nemo_run/code:/img"
