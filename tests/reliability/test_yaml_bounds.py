"""YAML and interpolations are bounded: bombs and deep nesting are one-line errors, not minutes or tracebacks.

Each hostile document goes through the real CLI the way a user would hand it over: as the
recipe config (`-c file.yaml`), as an override value (`+x=...`), or as `${...}` references
in a config. The process must exit 2 with one `error:` line (the subprocess timeout only
guards against a hang; nothing here is timed).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, clean_env

NEMOTRON = str(Path(sys.executable).with_name("nemotron"))
TINY = (REPO / "recipes/nano3/stage0_pretrain/config/tiny.yaml").read_text()


def laughs(levels: int = 10, fan: int = 9) -> str:
    """The "billion laughs" document: each level aliases the previous one `fan` times."""
    lines = ["a0: &a0 [lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def merges(levels: int = 10, fan: int = 9) -> str:
    """The same through `<<` merge keys (PyYAML copies merged pairs at every level)."""
    lines = ["m0: &m0 {x: 1}"]
    lines += [f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * fan) + f"], y{i}: 1}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


DOCUMENTS = {
    "laughs": (laughs(), "expands to more than"),
    "merge_bomb": (merges(), "expands to more than"),
    "deep_flow": ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 100 levels"),
    "deep_maps": ("x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "nesting deeper than 100 levels"),
    "deep_block": ("x:\n" + "".join("  " * (i + 1) + "- \n" for i in range(300)) + "\n",
                   "nesting deeper than 100 levels"),
    "recursive_alias": ("x: &x [1, *x]\n", "recursive alias"),
}


def nemotron(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    env = clean_env(NEMOTRON_STATE_DIR=str(tmp_path / "state"), NEMOTRON_ENV_FILE="")
    return subprocess.run([NEMOTRON, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stdout + p.stderr, p.stderr[-3000:]
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-3000:]
    assert len(lines[0]) < 400, lines[0]
    return lines[0]


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_hostile_config_files(tmp_path, name):
    text, needle = DOCUMENTS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY + text)
    line = one_error_line(nemotron(tmp_path, "nano3", "pretrain", "-c", str(path), "--dry-run", "data_path=/tmp"))
    assert str(path) in line and "YAML refused" in line and needle in line, line


@pytest.mark.parametrize("name", ["laughs", "deep_flow", "deep_maps", "recursive_alias"])
def test_hostile_override_values(tmp_path, name):
    text, needle = DOCUMENTS[name]
    value = text.split(":", 1)[1].strip() if name != "laughs" else "{" + ", ".join(laughs().splitlines()) + "}"
    line = one_error_line(nemotron(tmp_path, "nano3", "pretrain", "-c", "tiny", "--dry-run", "data_path=/tmp",
                                   f"+bomb={value}"))
    assert "override '+bomb=" in line and needle in line, line


def test_an_interpolation_string_bomb_is_refused_before_resolving(tmp_path):
    lines = ["bomb:", "  l0: " + "x" * 64]
    lines += [f"  l{i}: '" + "".join(f"${{bomb.l{i - 1}}}" for _ in range(9)) + "'" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text(TINY + "\n".join(lines) + "\n")
    line = one_error_line(nemotron(tmp_path, "nano3", "pretrain", "-c", str(path), "--dry-run", "data_path=/tmp"))
    assert re.search(r"config key 'bomb\.l\d' would expand to more than [\d,]+ characters", line), line


def test_a_long_interpolation_chain_and_a_cycle(tmp_path):
    chain = tmp_path / "chain.yaml"
    chain.write_text(TINY + "chain:\n" + "".join(f"  k{i}: ${{chain.k{i + 1}}}\n" for i in range(5000)) + "  k5000: 1\n")
    line = one_error_line(nemotron(tmp_path, "nano3", "pretrain", "-c", str(chain), "--dry-run", "data_path=/tmp"))
    assert "interpolations nest deeper than" in line, line
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(TINY + "a: ${b}\nb: ${c}\nc: ${a}\n")
    line = one_error_line(nemotron(tmp_path, "nano3", "pretrain", "-c", str(cycle), "--dry-run", "data_path=/tmp"))
    assert "refers to itself" in line, line


def test_ordinary_anchors_still_work(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text(TINY + "shared: &s {a: 1, b: [1, 2]}\nuse1: *s\nuse2: {<<: *s, c: 3}\n")
    p = nemotron(tmp_path, "nano3", "pretrain", "-c", str(path), "--dry-run", "data_path=/tmp")
    assert p.returncode == 0, p.stderr[-3000:]
