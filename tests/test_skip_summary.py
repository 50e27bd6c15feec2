"""scripts/test ends with one loud line when services could not start (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run_pytest_on(tmp_path: Path, body: str) -> str:
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(body))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    return proc.stdout


def test_service_skips_end_in_one_line_naming_each_service_and_count(tmp_path):
    out = _run_pytest_on(tmp_path, """
        import pytest
        def test_a(): pytest.skip("scripts/slurm start failed: munged: no such file")
        def test_b(): pytest.skip("scripts/slurm start failed: munged: no such file")
        def test_c(): pytest.skip("scripts/ray start failed: port 26379 in use")
        def test_d(): pytest.skip("unrelated reason")
        def test_e(): pass
    """)
    loud = [line for line in out.splitlines() if line.startswith("SERVICES DOWN")]
    assert len(loud) == 1, out
    assert "3 tests skipped" in loud[0]
    assert "slurm (2 tests skipped: munged: no such file)" in loud[0]
    assert "ray (1 test skipped: port 26379 in use)" in loud[0]


def test_no_line_when_every_service_started(tmp_path):
    out = _run_pytest_on(tmp_path, """
        import pytest
        def test_d(): pytest.skip("unrelated reason")
        def test_e(): pass
    """)
    assert "SERVICES DOWN" not in out, out
