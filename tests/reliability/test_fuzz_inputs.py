"""Fuzzed bad and hostile inputs: one-line project errors (or, for a legal hostile value, exactly
what it says), never a traceback, no artifact left behind, no injected command run, no secret in
clear, and nothing changed by a dry run.

The generated cases (tests/reliability/fuzzing.py, fuzzing_hostile.py) run in this process: 240
here (15 of each of the 16 kinds), 1,000 under `-m slow` and in benchmarks/fuzz_inputs.py. The
real processes a user starts (the `nemotron` CLI, a trainer, a data prep job) are checked end to
end on a few of the same kinds of input.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, clean_env
from tests.reliability.fuzzing import Fuzzer, tree

NEMOTRON = str(Path(sys.executable).with_name("nemotron"))
CATEGORIES = {"runspec", "env_toml", "dotlist", "train_config", "pretrain_data", "sft_data", "user_data", "data_import",
              "artifact_ref", "shell_injection", "secrets", "registry_records", "import_symlinks", "yaml_bombs",
              "env_toml_types", "dry_run"}


def _fuzz(reliability_dir, pretrain_data, sft_data, count: int, seed: int, monkeypatch):
    from nemotron_core.secrets import is_secret_name

    for name in list(os.environ):  # the cases choose their secrets; none of the runner's may leak in
        if is_secret_name(name):
            monkeypatch.delenv(name)
    work = reliability_dir / f"fuzz-{count}-{seed}"
    tally = Fuzzer(work / "cases", work / "state", pretrain_data, sft_data, seed=seed).run(count)
    assert tally.total == count
    assert set(tally.per_category) == CATEGORIES
    assert tally.failures == [], tally.line() + "\n" + "\n".join(tally.failures[:20])
    assert tally.outcomes["error"] + tally.outcomes["ok"] == count, tally.line()
    assert {c for c, kind in tally.by_kind if kind == "ok"} >= {"shell_injection", "dry_run"}  # both kinds seen


def test_fuzzed_inputs_end_in_one_line_errors(reliability_dir, pretrain_data, sft_data, monkeypatch):
    _fuzz(reliability_dir, pretrain_data, sft_data, 240, seed=11, monkeypatch=monkeypatch)


@pytest.mark.slow
def test_fuzzed_inputs_full_count(reliability_dir, pretrain_data, sft_data, monkeypatch):
    _fuzz(reliability_dir, pretrain_data, sft_data, 1000, seed=1000, monkeypatch=monkeypatch)


def _one_error_line(p: subprocess.CompletedProcess, job_output: bool = False) -> str:
    """The one `error:` line; a local job's output (progress lines, its error) comes on stdout."""
    out = p.stdout + p.stderr
    assert "Traceback" not in out, out[-3000:]
    errors = [line for line in (out if job_output else p.stderr).splitlines() if line.strip()]
    if job_output:
        errors = [line for line in errors if line.lower().startswith(("error", "traceback"))]
    assert len(errors) == 1 and errors[0].startswith("error: "), out[-3000:]
    return errors[0]


def test_the_cli_process_prints_one_line(reliability_dir, tmp_path):
    state = tmp_path / "state"
    bad_env = tmp_path / "env.toml"
    bad_env.write_text('[fz]\nexecutor = "slurmm"\n')
    layout = tmp_path / "not-sft-data"
    (layout / "validation").mkdir(parents=True)
    (layout / "train.parquet").write_bytes(b"not parquet")
    cases = {
        ("nano3", "pretrain", "--run", "fz", "--dry-run"): "is not one of",
        ("nano3", "data", "import", "sft", str(layout)): "not a Parquet file",
        ("artifacts", "show", "nano3-sft-data:v7"): "no artifact named",
        ("nano3", "sft", "--dry-run", "train..lr=1"): "not a valid dotted key",
        ("artifacts", "show", "-F"): "No such option: -F",  # click's own usage errors: one line too
    }
    for argv, needle in cases.items():
        env = clean_env(NEMOTRON_STATE_DIR=str(state), NEMOTRON_ENV_FILE=str(bad_env) if "fz" in argv else "")
        p = subprocess.run([NEMOTRON, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, (argv, p.stderr)
        assert needle in _one_error_line(p), argv
    assert not (state / "artifacts").exists() or tree(state / "artifacts") == {}


def test_trainer_on_a_truncated_shard_exits_2_and_writes_nothing(tmp_path, pretrain_data):
    """An even-byte truncation of a .bin still memory-maps: only the size check against the .idx catches it."""
    data = tmp_path / "data"
    shutil.copytree(pretrain_data, data, copy_function=os.link)
    shard = data / "megatron" / "train" / "synthetic-00001.bin"
    cut = shard.read_bytes()[:-2]
    shard.unlink()
    shard.write_bytes(cut)
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, str(REPO / "recipes/nano3/stage0_pretrain/train.py"), "--config", "tiny",
                        f"output_dir={out}", f"data_path={data}", "log.wandb.mode=disabled"],
                       cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr[-3000:]
    line = _one_error_line(p)
    assert "synthetic-00001" in line and "truncated or corrupted" in line
    assert not (out / "RESULT.json").exists() and not (out / "checkpoints").exists()


def test_data_prep_with_a_bad_record_in_a_worker_registers_nothing(tmp_path, pretrain_data):
    """The bad line is found inside a Ray shard task (the tokenizer is given, so no sampling pass reads it first)."""
    state = tmp_path / "state"
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": f"the capital of land {i} is city {i}"}) for i in range(3000)]
    lines[2500] = json.dumps({"text": ["not", "a", "string"]})
    source.write_text("\n".join(lines) + "\n")
    p = subprocess.run([NEMOTRON, "nano3", "data", "prep", "pretrain", "-c", "tiny", "~sources.synthetic",
                        f"+sources.user.uri={source}", f"tokenizer.path={pretrain_data / 'tokenizer'}"],
                       cwd=REPO, env=clean_env(NEMOTRON_STATE_DIR=str(state), NEMOTRON_ENV_FILE=""),
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-3000:]
    assert f"{source}:2501: field 'text' is missing or not a string" in _one_error_line(p, job_output=True)
    assert not (state / "artifacts").exists() or tree(state / "artifacts") == {}
    assert len(list((state / "jobs").glob("*/*/job.yaml"))) == 1  # it did run as a job
    assert list(state.rglob("RESULT.json")) == []  # nothing that looks like a finished output
