"""Whatever goes wrong, the real `nemotron` prints one line and no traceback; secrets never echo.

These inputs used to crash somewhere below the CLI (and the CLI's own handler crashed on
top). Other layers turn most of them into precise user errors; this file only holds the
CLI's promise, whatever layer fails: one stderr line starting `error:`, a non-zero exit,
no "Traceback" unless NEMOTRON_DEBUG=1 asks for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NEMOTRON = Path(sys.executable).with_name("nemotron")
SLURM = '[p]\nexecutor = "slurm"\naccount = "acct"\n'


def run(base: Path, *argv: str, env_toml: str = "", **extra: str) -> subprocess.CompletedProcess:
    (base / "home").mkdir(exist_ok=True)
    (base / "env.toml").write_text(env_toml)
    env = {"PATH": os.environ["PATH"], "HOME": str(base / "home"), "LANG": "C.UTF-8",
           "NEMOTRON_STATE_DIR": str(base / "state"), "NEMOTRON_ENV_FILE": str(base / "env.toml"),
           "XDG_RUNTIME_DIR": str(base / "home"), **extra}
    return subprocess.run([str(NEMOTRON), *argv], capture_output=True, text=True, timeout=300, cwd=base, env=env)


def assert_one_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0, out.stdout[-2000:]
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    return lines[0]


def _rl_source(base: Path) -> Path:
    src = base / "src"
    src.mkdir(exist_ok=True)
    (src / "train.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    (src / "manifest.json").write_text('{"files": ["train.jsonl"]}')
    return src


def case_state_folder_is_a_file(base: Path) -> subprocess.CompletedProcess:
    (base / "state-file").write_text("not a folder")
    return run(base, "nano3", "data", "import", "rl", str(_rl_source(base)),
               NEMOTRON_STATE_DIR=str(base / "state-file"))


def case_import_symlink_loop(base: Path) -> subprocess.CompletedProcess:
    (base / "loop-a").symlink_to(base / "loop-b")
    (base / "loop-b").symlink_to(base / "loop-a")
    return run(base, "nano3", "data", "import", "rl", str(base / "loop-a"))


def case_import_folder_with_a_symlink_loop(base: Path) -> subprocess.CompletedProcess:
    src = _rl_source(base)
    (src / "sub").mkdir()
    (src / "sub" / "up").symlink_to(src / "sub")
    return run(base, "nano3", "data", "import", "rl", str(src))


def case_artifact_root_is_a_file(base: Path) -> subprocess.CompletedProcess:
    (base / "root-file").write_text("x")
    return run(base, "nano3", "data", "import", "rl", str(_rl_source(base)), "--root", str(base / "root-file"))


def case_env_is_a_string(base: Path) -> subprocess.CompletedProcess:
    return run(base, "nano3", "sft", "--run", "p", "--dry-run", env_toml=SLURM + 'env = "FOO=1"\n')


def case_mounts_are_numbers(base: Path) -> subprocess.CompletedProcess:
    return run(base, "nano3", "sft", "--run", "p", "--dry-run", env_toml=SLURM + "mounts = [1, 2]\n")


def case_additional_parameters_is_a_string(base: Path) -> subprocess.CompletedProcess:
    return run(base, "nano3", "sft", "--run", "p", "--dry-run", env_toml=SLURM + 'additional_parameters = "x"\n')


def case_env_toml_is_not_toml(base: Path) -> subprocess.CompletedProcess:
    return run(base, "artifacts", "list", env_toml="[p\nexecutor = ")


CASES = [case_state_folder_is_a_file, case_import_symlink_loop, case_import_folder_with_a_symlink_loop,
         case_artifact_root_is_a_file, case_env_is_a_string, case_mounts_are_numbers,
         case_additional_parameters_is_a_string, case_env_toml_is_not_toml]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_one_line_and_no_traceback(case, tmp_path):
    assert_one_line(case(tmp_path))


def test_debug_shows_the_traceback_of_an_internal_error(tmp_path):
    """NEMOTRON_DEBUG=1 adds the traceback before the line (for bug reports), still ending in one `error:` line."""
    out = run(tmp_path, "nano3", "sft", "--run", "p", "--dry-run", env_toml=SLURM + "mounts = [1, 2]\n",
              NEMOTRON_DEBUG="1")
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "NEMOTRON_DEBUG" not in last
    if out.returncode == 1:  # still an internal error in the layer below: the traceback is there
        assert "Traceback" in out.stderr


@pytest.mark.parametrize("declared", [False, True])
def test_errors_never_echo_a_secret(tmp_path, declared):
    """A secret pasted where a name belongs (`artifacts show <token>`) is masked in the error line:
    secret-named variables (HF_TOKEN) and env.toml `secrets = [...]` names (DB_PASS) alike."""
    value = "hf_Sup3rSecretValue0123456789"
    name = "DB_PASS" if declared else "HF_TOKEN"
    env_toml = f'[local]\nsecrets = ["{name}"]\n' if declared else ""
    for argv in (["artifacts", "show", value], ["artifacts", "show", f"nano3-sft-model:{value}"],
                 ["nano3", "sft", "--run", value, "--dry-run"]):
        out = run(tmp_path, *argv, env_toml=env_toml, **{name: value})
        line = assert_one_line(out)
        assert value not in out.stderr + out.stdout, line
