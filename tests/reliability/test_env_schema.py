"""env.toml is checked against a schema: typos, wrong types and control characters are one-line errors.

Through the real CLI (`nemotron nano3 pretrain -c tiny --run p --dry-run`): exit 2, one
`error:` line naming the file, the profile and the key (with the nearest known key for a
typo, the expected type for a wrong one), no traceback, nothing written.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, clean_env

NEMOTRON = str(Path(sys.executable).with_name("nemotron"))


def dry_run(tmp_path: Path, env_toml: str, profile: str = "p") -> subprocess.CompletedProcess:
    env_file = tmp_path / "env.toml"
    env_file.write_text(env_toml)
    env = clean_env(NEMOTRON_STATE_DIR=str(tmp_path / "state"), NEMOTRON_ENV_FILE=str(env_file))
    return subprocess.run([NEMOTRON, "nano3", "pretrain", "-c", "tiny", "--run", profile, "--dry-run", "data_path=/tmp"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "Traceback" not in p.stdout + p.stderr, p.stderr[-3000:]
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-3000:]
    return lines[0]


SLURM = 'executor = "slurm"\naccount = "acct"\n'


@pytest.mark.parametrize("body,expected", [
    # typos: the nearest known key
    ('partiton = "batch"\n', r"\[p\] unknown key 'partiton' \(did you mean 'partition'\?\)"),
    ("gpus_per_nod = 8\n", r"\[p\] unknown key 'gpus_per_nod' \(did you mean 'gpus_per_node'\?\)"),
    ('contaner_image = "x"\n', r"\[p\] unknown key 'contaner_image' \(did you mean 'container_image'\?\)"),
    ('[p.wandb]\nprojet = "x"\n', r"\[p\] unknown key 'wandb.projet' \(did you mean 'project'\?\)"),
    # wrong types: the key and the type it must have
    ('mounts = "/a:/b"\n', r"\[p\] mounts = '/a:/b': must be a list of \"HOST:CONTAINER\" strings"),
    ("mounts = [1, 2]\n", r"\[p\] mounts\.0 = 1: mounts must be a list of \"HOST:CONTAINER\" strings"),
    ('env = "FOO=1"\n', r"\[p\] env = 'FOO=1': must be a table of NAME = value"),
    ('additional_parameters = "x"\n', r"\[p\] additional_parameters = 'x': must be a table of sbatch option"),
    ('nodes = "2"\n', r"\[p\] nodes = '2': must be a non-negative integer"),
    ('startup_commands = "echo hi"\n', r"\[p\] startup_commands = 'echo hi': must be a list of shell lines"),
    ('secrets = "HF_TOKEN"\n', r"\[p\] secrets = 'HF_TOKEN': must be a list of environment variable names"),
    ('exclusive = "yes"\n', r"\[p\] exclusive = 'yes': must be true or false"),
    ('tunnel = "sssh"\n', r"\[p\] tunnel = 'sssh': must be local or ssh"),
    # control characters: refused, naming the key
    ('partition = "batch\\n#SBATCH --wrap=x"\n', r"\[p\] partition holds a control character \('\\n'\)"),
    ('time = "04:00:00\\r"\n', r"\[p\] time holds a control character \('\\r'\)"),
    ('[p.env]\nFOO = "a\\u001bb"\n', r"\[p\] env\.FOO holds a control character"),
    ('startup_commands = ["echo a\\necho b"]\n', r"\[p\] startup_commands\.0 holds a control character"),
    # env var names
    ('[p.env]\n"A=1;touch X;B" = "v"\n', r"\[p\] env: 'A=1;touch X;B' is not an environment variable name"),
    ('secrets = ["HF TOKEN"]\n', r"\[p\] secrets\.0: 'HF TOKEN' is not an environment variable name"),
])
def test_bad_profiles_are_one_line_errors_naming_profile_and_key(tmp_path, body, expected):
    table, _, rest = body.partition("[p.")
    text = f"[p]\n{SLURM}{table}" + (f"[p.{rest}" if rest else "")
    line = one_error_line(dry_run(tmp_path, text))
    assert str(tmp_path / "env.toml") in line
    assert re.search(expected, line), line
    assert not (tmp_path / "state" / "jobs").exists()


@pytest.mark.parametrize("text,expected", [
    ('[wandb]\nprojct = "nano3"\n[p]\nexecutor = "local"\n', r"\[wandb\] unknown key 'projct' \(did you mean 'project'\?\)"),
    ('[cache]\ngit_dri = "/c"\n[p]\nexecutor = "local"\n', r"\[cache\] unknown key 'git_dri' \(did you mean 'git_dir'\?\)"),
    ('[p]\nextends = "base"\n[base]\nnods = 2\n', r"\[base\] unknown key 'nods' \(did you mean 'nodes'\?\)"),
    ('["p\\nq"]\nnodes = 1\n[p]\nexecutor = "local"\n', r"\['p\\nq'\] the table name holds a control character"),
    ("[p]\nexecutor = 'local'\nx = " + "[" * 3000 + "]" * 3000 + "\n", r"invalid TOML: values nest too deeply"),
])
def test_sections_parents_and_pathological_files(tmp_path, text, expected):
    assert re.search(expected, one_error_line(dry_run(tmp_path, text)))


def test_a_secret_value_in_a_wrong_type_is_not_echoed(tmp_path):
    line = one_error_line(dry_run(tmp_path, '[p]\nexecutor = "local"\n[p.env]\nHF_TOKEN = ["hf_not_shown_123"]\n'))
    assert "env.HF_TOKEN" in line and "hf_not_shown_123" not in line


def test_the_readme_example_and_extends_still_work(tmp_path):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## env\.toml reference.*?```toml\n(.*?)```", readme, re.S).group(1)
    p = dry_run(tmp_path, block, profile="local")
    assert p.returncode == 0, p.stderr[-3000:]
    text = block + '\n[mine]\nextends = ["local"]\nnproc_per_node = 1\n[mine.env]\nhttp_proxy = "http://proxy:3128"\n'
    p = dry_run(tmp_path, text, profile="mine")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "profile mine" in p.stdout
