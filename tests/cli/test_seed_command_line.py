"""The seed's command-line conventions through the real `nemotron` binary: short globals anywhere,
`kit squash PROFILE IMAGE`, `nano3 eval -t TASK`, `--stage` / `--force-squash` refused where they mean nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_cli.context import split_argv
from nemotron_core.errors import NemotronError

NEMOTRON = Path(sys.executable).with_name("nemotron")
SLURM = """\
[cluster]
executor = "slurm"
account = "acct"
partition = "batch"
squash = true
squash_dir = "{squash}"
container_image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
"""


def nemotron(tmp_path: Path, *args: str, env_toml: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEMOTRON_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "300", "NEMOTRON_ENV_FILE": ""}
    if env_toml is not None:
        (tmp_path / "env.toml").write_text(env_toml)
        env["NEMOTRON_ENV_FILE"] = str(tmp_path / "env.toml")
    return subprocess.run([str(NEMOTRON), *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)


@pytest.mark.parametrize("argv", [
    ["-r", "dev", "-d", "nano3", "sft", "-c", "tiny", "a=1"],
    ["nano3", "-d", "sft", "a=1", "-rdev", "-ctiny"],
    ["nano3", "sft", "a=1", "-r=dev", "--config=tiny", "--dry-run"],
])
def test_short_globals_anywhere(argv):
    rest, g = split_argv(argv)
    assert rest == ["nano3", "sft", "a=1"]
    assert (g.run, g.dry_run, g.config, g.mode) == ("dev", True, "tiny", "run")


def test_short_batch_stage_and_force_squash():
    rest, g = split_argv(["nano3", "pretrain", "-b", "prod", "--stage", "--force-squash", "--", "-d", "-b"])
    assert rest == ["nano3", "pretrain"] and (g.batch, g.attached, g.stage, g.force_squash) == ("prod", False, True, True)
    assert g.passthrough == ["-d", "-b"] and not g.dry_run  # after `--`: the script's own words


@pytest.mark.parametrize("argv,message", [
    (["-r", "a", "-b", "b"], "exclusive"),
    (["nano3", "sft", "-r"], "option -r needs a value"),
    (["nano3", "sft", "-b", "-d"], "option -b needs a value"),
])
def test_bad_short_globals(argv, message):
    with pytest.raises(NemotronError, match=message):
        split_argv(argv)


def test_dry_run_with_short_flags_through_the_binary(tmp_path):
    out = nemotron(tmp_path, "nano3", "data", "prep", "sft", "-d", "-c", "tiny")
    assert out.returncode == 0, out.stderr
    assert "plan (dry run)" in out.stdout
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("job.yaml"))


def test_kit_squash_takes_profile_then_image(tmp_path):
    toml = SLURM.format(squash=tmp_path / "images")
    seed_order = nemotron(tmp_path, "kit", "squash", "cluster", "nvcr.io/nvidia/nemo:25.11", "-d", env_toml=toml)
    ours = nemotron(tmp_path, "kit", "squash", "nvcr.io/nvidia/nemo:25.11", "-r", "cluster", "-d", env_toml=toml)
    assert seed_order.returncode == ours.returncode == 0, seed_order.stderr + ours.stderr
    assert seed_order.stdout == ours.stdout and "enroot import" in ours.stdout
    assert "nvcr.io+nvidia+nemo+25.11.sqsh" in ours.stdout
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize("args,message", [
    (("kit", "squash", "nvcr.io/nvidia/nemo:25.11", "-d"), "needs a Slurm profile"),
    (("kit", "squash", "cluster", "img", "-r", "other", "-d"), "two profiles, 'cluster' (argument) and 'other'"),
    (("kit", "squash", "a", "b", "c", "-d"), "at most 2 arguments, got 3"),
    (("kit", "squash", "nope", "img", "-d"), "nope"),
])
def test_kit_squash_errors_are_one_line(tmp_path, args, message):
    out = nemotron(tmp_path, *args, env_toml=SLURM.format(squash=tmp_path / "images"))
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    assert message in out.stderr


def test_force_squash_on_kit_squash_forces_the_import(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "img+1.sqsh").write_text("")
    toml = SLURM.format(squash=images)
    cached = nemotron(tmp_path, "kit", "squash", "cluster", "img:1", "-d", env_toml=toml)
    forced = nemotron(tmp_path, "kit", "squash", "cluster", "img:1", "-d", "--force-squash", env_toml=toml)
    assert cached.returncode == forced.returncode == 0, cached.stderr + forced.stderr
    assert "forced" not in cached.stdout and "# forced: the import runs even when the squash file exists" in forced.stdout


@pytest.mark.parametrize("flag", ["--stage", "--force-squash"])
def test_stage_and_force_squash_are_refused_where_they_mean_nothing(tmp_path, flag):
    out = nemotron(tmp_path, "artifacts", "list", flag)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and flag in out.stderr, out.stderr


def test_eval_task_flag_selects_tasks_in_the_config(tmp_path):
    out = nemotron(tmp_path, "nano3", "eval", "-c", "tiny", "-t", "perplexity", "--task", "hellaswag", "-t",
                   "perplexity", "-d")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "tasks:" in line)
    assert "- perplexity" in lines[at + 1] and "- hellaswag" in lines[at + 2] and "- " not in lines[at + 3]


@pytest.mark.parametrize("task", ["a;rm -rf /", "../x", "-x", "x" * 101])
def test_eval_task_names_are_plain_names(tmp_path, task):
    out = nemotron(tmp_path, "nano3", "eval", "-c", "tiny", f"--task={task}", "-d")
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr


def test_eval_config_checks_and_selects_tasks():
    from recipes.nano3.evaluation import settings

    cfg = {"tasks": [], "lm_eval": {"enabled": True}}
    assert settings.selected_tasks(cfg) == list(settings.OWN_TASKS)
    assert settings.selected_tasks({**cfg, "tasks": ["nano3_qa", "hellaswag", "nano3_qa"]}) == ["nano3_qa", "hellaswag"]
    assert settings.selected_tasks({"tasks": ["perplexity", "nano3_qa"], "lm_eval": {"enabled": False}}) == ["perplexity"]
    from recipes.nano3.evaluation.report import flat_metrics

    assert flat_metrics({}, {}, {"rl_reward": 0.5}, {"nano3_qa": {"exact_match": 1.0}}) == {
        "rl_reward": 0.5, "lmeval_qa_exact_match": 1.0}


def test_recipe_help_lists_profiles_options_and_examples(tmp_path):
    toml = SLURM.format(squash=tmp_path / "images") + '\n[dev]\nextends = "cluster"\nrun_partition = "interactive"\n'
    out = nemotron(tmp_path, "nano3", "sft", "--help", env_toml=toml)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "cluster" in text and "slurm, partition: batch" in text
    assert "slurm, partition: batch, run: interactive" in text and "local" in text
    assert "output_dir=???" in text and "train.*" in text  # the default config's top level
    assert "nemotron nano3 sft -c tiny -d" in text and "-b PROFILE --stage" in text


def test_recipe_help_survives_a_broken_env_toml(tmp_path):
    out = nemotron(tmp_path, "nano3", "pretrain", "--help", env_toml='[p]\nexecutr = "slurm"\n')
    assert out.returncode == 0, out.stderr
    assert "unknown key 'executr'" in out.stdout
