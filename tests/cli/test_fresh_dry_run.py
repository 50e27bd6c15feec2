"""The newcomer path: a fresh checkout, nothing published, no services: every recipe's `--dry-run` works.

The recipe commands are found in the Typer tree (every RecipeCommand leaf, plus `nano3 pipe`), not
listed here, so a new stage is covered without editing this file. Each runs through the real
`nemotron` binary on an empty state folder, locally and through a Slurm profile: it exits 0, shows
each unpublished input as pending with the command that produces it, the plan and (Slurm) the
sbatch text, and creates nothing. Without --dry-run the same command still refuses in one line.
"""

from __future__ import annotations

import re

import pytest

from tests.reliability.test_dry_run import REPO, World, changes, empty_world, leaves, snapshot

PENDING = re.compile(r"^pending input: (?P<ref>\S+) is not published yet; produced by `nemotron (?P<cmd>[^`]+)`$", re.M)


def recipe_commands() -> list[tuple[tuple[str, ...], object]]:
    from nemotron_cli.recipe_typer import RecipeCommand

    return [(path, c) for path, c in leaves() if isinstance(c, RecipeCommand) and c.stage is not None]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return empty_world(tmp_path_factory.mktemp("fresh"))


def test_every_stage_has_a_recipe_command():
    from pipeline.stages import STAGES

    assert {c.stage.name for _, c in recipe_commands()} == set(STAGES)


SLURM = ["--run", "slurm"]


@pytest.mark.parametrize("profile", [[], SLURM], ids=["local", "slurm"])
def test_every_recipe_dry_run_works_on_an_empty_state(world, profile):
    paths = {" ".join(p) for p, _ in leaves()}
    before = snapshot(world.watched())
    for path, command in recipe_commands():
        argv = [*path, *profile, "--dry-run"]
        out = world.nemotron(*argv)
        where = f"nemotron {' '.join(argv)}"
        assert out.returncode == 0, f"{where}: exit {out.returncode}\n{out.stderr[-2000:]}"
        assert "plan (dry run)" in out.stdout and "train config (resolved)" in out.stdout, where
        pending = {m["ref"]: m["cmd"] for m in PENDING.finditer(out.stdout)}
        stage = command.stage
        # Every input slot is unpublished here: each shows up pending, naming a real command that builds it.
        assert bool(pending) == bool(stage.inputs), f"{where}: pending {pending}\n{out.stdout[:3000]}"
        for ref, cmd in pending.items():
            assert ref.endswith(":latest") and cmd in paths, f"{where}: {ref} -> {cmd}"
            assert f"<pending: {ref}" in out.stdout, where
        assert ("#SBATCH --partition=batch" in out.stdout) == bool(profile), where
        assert not changes(before, snapshot(world.watched())), f"{where} created files"


@pytest.mark.parametrize("profile", [[], SLURM], ids=["local", "slurm"])
def test_pipe_dry_run_works_on_an_empty_state(world, profile):
    from pipeline.stages import STAGES

    before = snapshot(world.watched())
    out = world.nemotron("nano3", "pipe", *profile, "--dry-run")
    assert out.returncode == 0, out.stderr[-2000:]
    for name in STAGES:
        assert re.search(rf"^│ {name}\b.*│ submit", out.stdout, re.M), f"{name} not planned\n{out.stdout}"
    assert "after data_pretrain (inputs not built yet)" in out.stdout
    assert ("sbatch script" in out.stdout) == bool(profile)
    # A subset whose upstreams nobody built: pending, naming the command that builds each.
    out = world.nemotron("nano3", "pipe", "--stages", "sft", *profile, "--dry-run")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "not published: nano3-sft-data:latest produced by `nemotron nano3 data prep sft`" in out.stdout
    assert not changes(before, snapshot(world.watched()))


def test_a_real_run_still_refuses_an_unpublished_input(world):
    before = snapshot(world.watched())
    out = world.nemotron("nano3", "sft")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: no artifact named 'nano3-sft-data'"), lines[0]
    assert not changes(before, snapshot(world.watched()))


SFT_TINY = REPO / "recipes/nano3/stage1_sft/config/tiny.yaml"


def sft_config(folder, name: str, text: str) -> str:
    """A config `name` in `folder` composed over the SFT recipe's tiny config (`defaults: [base]`)."""
    (folder / "base.yaml").write_text(SFT_TINY.read_text())
    (folder / name).write_text("defaults: [base]\n" + text)
    return str(folder / name)


def test_a_seed_layout_config_dry_runs_with_its_aliases_pending(world, tmp_path):
    """`run:` aliases, `defaults:`, a `.yml` file and a `run.model=` override, through the real CLI."""
    config = sft_config(tmp_path, "seed.yml", "run:\n  data: nano3-sft-data:latest\n  model: nano3-pretrain-model:latest\n"
                                              "data_path: ${art:data}\nbase_model: ${art:model,path}\n")
    before = snapshot(world.watched())
    out = world.nemotron("nano3", "sft", "-c", config, "run.model=nano3-pretrain-model:best", "--dry-run")
    assert out.returncode == 0, out.stderr
    pending = {m["ref"]: m["cmd"] for m in PENDING.finditer(out.stdout)}
    assert pending == {"nano3-sft-data:latest": "nano3 data prep sft", "nano3-pretrain-model:best": "nano3 pretrain"}
    assert not changes(before, snapshot(world.watched()))


def test_a_config_run_env_overrides_the_slurm_profile_in_the_sbatch_text(world, tmp_path):
    config = sft_config(tmp_path, "env.yaml", "run:\n  env:\n    container: example.org/mine:1\n"
                                              "    partition: special\n    startup_commands: [echo from-the-config]\n")
    out = world.nemotron("nano3", "sft", "-c", config, "--run", "slurm", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "#SBATCH --partition=special" in out.stdout and "--container-image example.org/mine:1" in out.stdout
    assert "\necho from-the-config\n" in out.stdout
