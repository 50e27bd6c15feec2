"""What the hostile fuzzer (fuzzing_hostile.py) found, each pinned once through the real CLI.

- a fifo named like a version record hung `artifacts list` and `verify` forever;
- one corrupt alias file made `artifacts list` refuse to list anything;
- a secret pasted as an alias or as the artifact root was printed back on stdout;
- the sbatch process inherited the variable `[wandb] api_key_env` names (declared secret);
- a 200-byte alias bomb under the node bound kept the CLI busy for half a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nemotron_core.artifacts import open_registry

from tests.reliability.test_script_injection import cli, profile_text, srun_record, stubs  # noqa: F401 - fixtures
from tests.reliability.test_yaml_bounds import laughs

NEMOTRON = Path(sys.executable).with_name("nemotron")
NAME = "nano3-sft-data"
SECRET = "hf_FuzzFoundThisValue0123456789"


def nemotron(base: Path, *argv: str, **extra: str) -> subprocess.CompletedProcess:
    (base / "home").mkdir(exist_ok=True)
    (base / "env.toml").touch()
    env = {"PATH": os.environ["PATH"], "HOME": str(base / "home"), "LANG": "C.UTF-8", "COLUMNS": "200",
           "NEMOTRON_STATE_DIR": str(base / "state"), "NEMOTRON_ENV_FILE": str(base / "env.toml"), **extra}
    return subprocess.run([str(NEMOTRON), *argv], capture_output=True, text=True, timeout=120, cwd=base, env=env)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode != 0, p.stdout[-2000:]
    assert "Traceback" not in p.stdout + p.stderr, p.stderr[-3000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-3000:]
    return lines[0]


def two_versions(base: Path) -> Path:
    root = base / "reg"
    reg = open_registry({"root": str(root)})
    for i in (1, 2):
        src = base / f"src{i}"
        src.mkdir()
        (src / "train.parquet").write_bytes(b"PAR1 %d PAR1" % i)
        reg.publish(NAME, src)
    reg.set_alias(f"{NAME}:v2", "best")
    return root


def test_a_fifo_named_like_a_record_is_unreadable_not_a_hang(tmp_path):
    root = two_versions(tmp_path)
    record = root / NAME / "versions" / "v2.json"
    record.unlink()
    os.mkfifo(record)  # opening it for reading would block until someone writes
    out = nemotron(tmp_path, "artifacts", "verify", "--root", str(root))
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert f"FAILED  {NAME}:v2: unreadable version record" in out.stdout and "not a regular file" in out.stdout
    out = nemotron(tmp_path, "artifacts", "list", "--json", "--root", str(root))
    assert out.returncode == 0, out.stderr
    rows = {r["ref"]: r for r in json.loads(out.stdout)}
    assert "problem" in rows[f"{NAME}:v2"] and "problem" not in rows[f"{NAME}:v1"]


def test_a_corrupt_alias_file_hides_no_version_from_list(tmp_path):
    root = two_versions(tmp_path)
    (root / NAME / "aliases" / "best.json").write_text('{"version": "../x"}')
    out = nemotron(tmp_path, "artifacts", "list", "--json", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert {r["ref"] for r in json.loads(out.stdout)} == {f"{NAME}:v1", f"{NAME}:v2"}
    out = nemotron(tmp_path, "artifacts", "verify", "--root", str(root))
    assert out.returncode != 0 and "corrupt alias file" in out.stdout, out.stdout


def test_a_secret_pasted_as_an_alias_or_a_root_is_refused_unechoed(tmp_path):
    root = two_versions(tmp_path)
    for argv in (["artifacts", "alias", f"{NAME}:v1", SECRET, "--dry-run", "--root", str(root)],
                 ["artifacts", "alias", f"{NAME}:v1", SECRET, "--root", str(root)],
                 ["artifacts", "list", "--root", str(tmp_path / SECRET)]):
        out = nemotron(tmp_path, *argv, HF_TOKEN=SECRET)
        line = one_error_line(out)
        assert "holds the value of the secret $HF_TOKEN" in line, line
        assert SECRET not in out.stdout + out.stderr
    assert not (root / NAME / "aliases" / f"{SECRET}.json").exists() and not (tmp_path / SECRET).exists()


def test_sbatch_does_not_inherit_the_wandb_key_variable(cli, stubs, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("MY_WB", "wb-value-only-in-secrets-env")
    toml = profile_text() + '[wandb]\napi_key_env = "MY_WB"\n'
    assert cli(toml, "--batch", "p", "sleep=0") == 0, capsys.readouterr().err
    sbatch_env = dict(kv.split("=", 1) for kv in (stubs / "sbatch.env").read_text().split("\0") if "=" in kv)
    assert "MY_WB" not in sbatch_env
    assert srun_record(stubs)["env"]["MY_WB"] == "wb-value-only-in-secrets-env"  # the job gets it, from secrets.env


def test_a_small_alias_bomb_under_the_node_bound_is_refused(tmp_path):
    bomb = "{" + ", ".join(laughs(6, 6).splitlines()) + "}"  # ~200 bytes, ~19,000 nodes once expanded
    line = one_error_line(nemotron(tmp_path, "nano3", "pretrain", "-c", "tiny", "--dry-run", "data_path=/tmp",
                                   f"+bomb={bomb}"))
    assert "expands to more than 2,000 nodes through aliases" in line, line
