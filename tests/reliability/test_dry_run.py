"""`--dry-run` changes nothing, for every command the CLI has, through the real `nemotron` binary.

The command tree is walked from the Typer/click objects (a new command is covered without
editing this file); each leaf runs with `--dry-run` (at the front, in the middle or at the
end of the line, with each of its flags, locally and through Slurm and Ray profiles)
against a world with published artifacts. After every run the state folder, the artifact
root (outside the state folder, from env.toml), the sources, $HOME and $XDG_RUNTIME_DIR
must be byte-for-byte what they were: names, modes, contents, link targets. A command
either prints its plan (exit 0) or refuses with one line (exit 2).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NEMOTRON = Path(sys.executable).with_name("nemotron")

STAGES = ("pretrain", "sft", "rl")
ENV_TOML = """\
[slurm]
executor = "slurm"
account = "acct"
partition = "batch"
container_image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"

[ray]
executor = "ray"
address = "http://127.0.0.1:1"

[artifacts]
root = "{root}"
"""


def _sources(base: Path) -> dict[str, Path]:
    """Minimal valid import layouts: Megatron bin/idx + blend, Parquet splits, JSONL + manifest, HF safetensors."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.numpy import save

    buf = io.BytesIO()
    pq.write_table(pa.table({"messages": ["m0", "m1"]}), buf)
    layouts: dict[str, dict[str, bytes | str]] = {
        "data-pretrain": {"text.bin": b"\0" * 32, "text.idx": b"MMIDIDX\0", "blend.json": json.dumps(["text"]),
                          "tokenizer/tokenizer.json": "{}"},
        "data-sft": {"train.parquet": buf.getvalue()},
        "data-rl": {"train.jsonl": '{"prompt": "1+1", "answer": "2"}\n', "manifest.json": '{"files": ["train.jsonl"]}'},
        "model": {"config.json": '{"model_type": "llama"}',
                  "model.safetensors": save({"w": np.zeros((2, 2), dtype=np.float32)})},
    }
    out = {}
    for name, files in layouts.items():
        for rel, data in files.items():
            p = base / name / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data.encode() if isinstance(data, str) else data)
        out[name] = base / name
    return out


@dataclass
class World:
    base: Path
    state: Path
    registry: Path
    sources: dict[str, Path]
    env: dict[str, str]

    def source(self, kind: str, stage: str) -> Path:
        return self.sources["model" if kind == "model" else f"data-{stage}"]

    def nemotron(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(NEMOTRON), *args], capture_output=True, text=True, timeout=300,
                              cwd=self.base, env=self.env)

    def watched(self) -> list[Path]:
        return [self.state, self.registry, self.base / "sources", self.base / "home", self.base / "xdg"]


def make_world(base: Path) -> World:
    """A state folder, an artifact root outside it, every data and model artifact published (sft-model
    twice: v1 is unaliased, what gc deletes; v2 carries the alias `best`), through the real CLI."""
    (base / "state").mkdir(parents=True, mode=0o700)
    world = empty_world(base)
    for stage in STAGES:
        for kind in ("data", "model"):
            out = world.nemotron("nano3", kind, "import", stage, str(world.source(kind, stage)))
            assert out.returncode == 0, out.stderr
    assert world.nemotron("nano3", "model", "import", "sft", str(world.source("model", "sft"))).returncode == 0
    assert world.nemotron("artifacts", "alias", "nano3-sft-model:v2", "best").returncode == 0
    return world


def empty_world(base: Path) -> World:
    """Sources and env.toml only: no state folder, no artifact root yet."""
    for sub in ("home", "xdg"):
        (base / sub).mkdir(parents=True, mode=0o700)
    (base / "env.toml").write_text(ENV_TOML.format(root=base / "registry"))
    # A clean environment: no Prefect/nemo-run homes (the CLI must pin them), no server, no secrets.
    env = {"PATH": os.environ["PATH"], "HOME": str(base / "home"), "LANG": "C.UTF-8", "COLUMNS": "200",
           "NEMOTRON_STATE_DIR": str(base / "state"), "NEMOTRON_ENV_FILE": str(base / "env.toml"),
           "XDG_RUNTIME_DIR": str(base / "xdg")}
    return World(base, base / "state", base / "registry", _sources(base / "sources"), env)


def snapshot(roots: list[Path]) -> dict[str, str]:
    """Every entry under `roots` (links not followed): path -> type, mode and content digest / link target."""
    out: dict[str, str] = {}
    for root in roots:
        if not os.path.lexists(root):
            out[str(root)] = "absent"
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in [*dirnames, *filenames, ""]:
                p = os.path.join(dirpath, name) if name else dirpath
                st = os.lstat(p)
                mode = oct(stat.S_IMODE(st.st_mode))
                if stat.S_ISLNK(st.st_mode):
                    out[p] = f"link {os.readlink(p)}"
                elif stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        out[p] = f"file {mode} {hashlib.file_digest(f, 'sha256').hexdigest()}"
                else:
                    out[p] = f"dir {mode}"
    return out


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted([f"+ {p}" for p in after.keys() - before.keys()] + [f"- {p}" for p in before.keys() - after.keys()]
                  + [f"~ {p}" for p in before.keys() & after.keys() if before[p] != after[p]])


def assert_plan_or_refusal(out: subprocess.CompletedProcess, argv: list[str]) -> None:
    where = f"nemotron {' '.join(argv)}"
    assert "Traceback" not in out.stderr + out.stdout, f"{where}: traceback\n{out.stderr[-3000:]}"
    if out.returncode == 0:
        return
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), \
        f"{where}: exit {out.returncode}, expected 0 or 2 with one 'error:' line\n{out.stderr[-3000:]}"


# --------------------------------------------------------------- the whole command tree

def leaves() -> list[tuple[tuple[str, ...], object]]:
    import typer

    from nemotron_cli.app import app
    from nemotron_cli.dry_run import leaf_commands

    return list(leaf_commands(typer.main.get_command(app)))


def argument_value(world: World, path: tuple[str, ...], param: str) -> str:
    """A plausible value for a required argument, by its name; anything unknown gets 'x' (it must still change nothing)."""
    if param == "source":
        kind, stage = path[-3], path[-1]
        return str(world.source(kind, stage))
    if param in ("ref", "model"):
        return "nano3-sft-model:v2"
    if param == "alias":
        return "best"
    if param == "image":
        return "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
    return "x"


def command_lines(world: World) -> list[list[str]]:
    """Each leaf: its required arguments, then once bare and once with each flag; in each profile mode;
    --dry-run moved around the line."""
    lines: list[list[str]] = []
    for path, command in leaves():
        args = [argument_value(world, path, p.name) for p in command.params
                if p.param_type_name == "argument" and p.required]
        flags = [p.opts[0] for p in command.params
                 if p.param_type_name == "option" and getattr(p, "is_flag", False) and p.opts[0] != "--dry-run"]
        for variant in ([], *([f] for f in flags)):
            for mode in ([], ["--run", "slurm"], ["--batch", "ray"]):
                lines.append([*path, *args, *variant, *mode])
    placed = []
    for i, line in enumerate(lines):
        at = (0, len(line) // 2, len(line))[(i + i // 3) % 3]  # not tied to the profile mode
        placed.append([*line[:at], "--dry-run", *line[at:]])
    return placed


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("dry-run-world"))


def test_the_walk_finds_every_command():
    paths = {" ".join(p) for p, _ in leaves()}
    assert {"artifacts gc", "artifacts alias", "nano3 data import rl", "nano3 model import sft", "evaluate",
            "nano3 model eval", "nano3 pipe", "nano3 sft", "nano3 data prep pretrain", "kit squash"} <= paths
    assert len(paths) >= 22


def test_every_command_with_dry_run_changes_nothing(world):
    before = snapshot(world.watched())
    for argv in command_lines(world):
        out = world.nemotron(*argv)
        assert_plan_or_refusal(out, argv)
        diff = changes(before, snapshot(world.watched()))
        assert not diff, f"nemotron {' '.join(argv)} changed files under --dry-run:\n" + "\n".join(diff[:20])


def test_dry_run_on_a_missing_state_folder_creates_none(tmp_path):
    """Every leaf, bare, where no state folder, artifact root or Prefect home exists yet: none appears."""
    empty = empty_world(tmp_path / "empty")
    before = snapshot(empty.watched())
    for path, command in leaves():
        args = [argument_value(empty, path, p.name) for p in command.params
                if p.param_type_name == "argument" and p.required]
        argv = [*path, *args, "--dry-run"]
        assert_plan_or_refusal(empty.nemotron(*argv), argv)
        diff = changes(before, snapshot(empty.watched()))
        assert not diff, f"nemotron {' '.join(argv)} created files under --dry-run:\n" + "\n".join(diff[:20])


# --------------------------------------------------------------- the commands that acted for real

@pytest.fixture
def fresh(tmp_path) -> World:
    return make_world(tmp_path / "w")


def unchanged(world: World, *argv: str) -> subprocess.CompletedProcess:
    before = snapshot(world.watched())
    out = world.nemotron(*argv)
    assert out.returncode == 0, out.stderr
    assert not changes(before, snapshot(world.watched())), changes(before, snapshot(world.watched()))
    return out


@pytest.mark.parametrize("argv", [["artifacts", "gc", "--dry-run"], ["--dry-run", "artifacts", "gc"]])
def test_gc_dry_run_lists_and_keeps_v1(fresh, argv):
    out = unchanged(fresh, *argv)
    assert "would delete version nano3-sft-model:v1" in out.stdout
    assert "deleted version" not in out.stdout.replace("would delete version", "")
    assert fresh.nemotron("artifacts", "show", "nano3-sft-model:v1").returncode == 0
    # After `--` the words belong to a recipe script: gc refuses them rather than dropping a --dry-run there.
    misplaced = fresh.nemotron("artifacts", "gc", "--", "--dry-run")
    assert misplaced.returncode == 2 and "takes no arguments after '--'" in misplaced.stderr
    assert fresh.nemotron("artifacts", "show", "nano3-sft-model:v1").returncode == 0
    real = fresh.nemotron("artifacts", "gc")  # the same command without --dry-run does delete it
    assert "deleted version nano3-sft-model:v1" in real.stdout
    assert fresh.nemotron("artifacts", "show", "nano3-sft-model:v1").returncode == 2


def test_alias_dry_run_set_move_and_remove(fresh):
    out = unchanged(fresh, "artifacts", "alias", "nano3-sft-model:v1", "best", "--dry-run")
    assert out.stdout.strip() == ("would point nano3-sft-model:best -> nano3-sft-model:v1 "
                                  "(now -> nano3-sft-model:v2); dry run: nothing changed")
    out = unchanged(fresh, "artifacts", "alias", "nano3-rl-model:v1", "prod", "--dry-run")
    assert "would point nano3-rl-model:prod -> nano3-rl-model:v1 (new alias)" in out.stdout
    out = unchanged(fresh, "artifacts", "alias", "nano3-sft-model", "best", "--remove", "--dry-run")
    assert "would remove alias nano3-sft-model:best (now -> nano3-sft-model:v2)" in out.stdout
    # What the real command would refuse, the dry run refuses the same way.
    bad = fresh.nemotron("artifacts", "alias", "nano3-sft-model", "nope", "--remove", "--dry-run")
    assert bad.returncode == 2 and bad.stderr.startswith("error: artifact nano3-sft-model has no alias 'nope'")
    bad = fresh.nemotron("--dry-run", "artifacts", "alias", "nano3-sft-model:v1", "latest")
    assert bad.returncode == 2 and "'latest' is derived" in bad.stderr


@pytest.mark.parametrize("kind", ["data", "model"])
def test_import_dry_run_registers_nothing(fresh, kind):
    src = str(fresh.source(kind, "rl"))
    out = unchanged(fresh, "nano3", kind, "import", "rl", src, "--move", "--alias", "candidate", "--dry-run")
    name = f"nano3-rl-{kind}"
    assert f"would import {src} as the next version of {name} (after {name}:v1)" in out.stdout
    assert "would move (rename) it into" in out.stdout and "latest, candidate" in out.stdout
    listed = fresh.nemotron("artifacts", "list", name, "--json")
    assert [v["ref"] for v in json.loads(listed.stdout)] == [f"{name}:v1"]
    # A source the real import would refuse is refused by the dry run too, with the same one line.
    bad = fresh.nemotron("nano3", kind, "import", "rl", str(fresh.base / "sources"), "--dry-run")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("argv", [["evaluate", "nano3-sft-model:v2"], ["nano3", "model", "eval", "nano3-rl-model"]])
def test_eval_dry_run_prints_the_plan_and_runs_nothing(fresh, argv):
    out = unchanged(fresh, *argv, "--dry-run")
    assert "would be evaluated on nano3-pretrain-data:v1 + nano3-rl-data:v1" in out.stdout
    assert "and register nano3-eval" in out.stdout and "dry run: nothing ran" in out.stdout
    assert not (fresh.state / "jobs").exists() and not (fresh.state / "outputs").exists()


@pytest.mark.parametrize("argv", [["nano3", "sft", "--batch", "slurm"], ["nano3", "data", "prep", "rl"],
                                  ["nano3", "pipe", "--run", "slurm"]])
def test_recipe_and_pipe_dry_run_name_the_job_dir_and_create_none(fresh, argv):
    out = unchanged(fresh, *argv, "--dry-run")
    if argv[1] != "pipe":
        assert "not written: dry run" in out.stdout and str(fresh.state / "jobs") in out.stdout
    assert not (fresh.state / "jobs").exists()
    assert not (fresh.base / "home" / ".prefect").exists() and not (fresh.state / "prefect").exists()
