"""Pieces of the execution layer that need no cluster: states, tags, secrets file, refs, logs, packaging."""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from nemotron_core.execution.backends.slurm_poll import _pair, _raw_exit
from nemotron_core.execution.backends.slurm_tags import make_comment, parse_comment
from nemotron_core.execution.logs import LogFollower, TextFollower
from nemotron_core.execution.refs import JobRef, key_lock, refs_for_flow_run, refs_for_key
from nemotron_core.execution.secrets_file import (collect_secrets, scrubbed_environ, secret_names, source_lines,
                                                  write_secrets_file)
from nemotron_core.execution.states import JobState, JobStatus, slurm_state
from nemotron_core.profiles import parse_env_text


@pytest.mark.parametrize("raw,state", [
    ("COMPLETED", JobState.COMPLETED), ("CD", JobState.COMPLETED), ("FAILED", JobState.FAILED),
    ("CANCELLED by 0", JobState.CANCELLED), ("TIMEOUT", JobState.TIMEOUT), ("PREEMPTED", JobState.PREEMPTED),
    ("NODE_FAIL", JobState.NODE_FAIL), ("BOOT_FAIL", JobState.NODE_FAIL), ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
    ("COMPLETING", JobState.RUNNING), ("REQUEUED", JobState.PENDING), ("CONFIGURING", JobState.PENDING),
    (["RUNNING", "COMPLETING"], JobState.RUNNING), ("WHATEVER", JobState.UNKNOWN), ("", JobState.UNKNOWN),
])
def test_slurm_states_are_kept_not_folded(raw, state):
    assert slurm_state(raw) is state


def test_exit_codes_from_every_slurm_format():
    assert _raw_exit(768) == (3, None)  # squeue --json 22.05: raw wait status
    assert _raw_exit(15) == (0, 15)
    assert _raw_exit({"return_code": {"number": 3}, "signal": {"id": 0}}) == (3, None)  # 23.02+
    assert _pair("3:0") == (3, None) and _pair("0:15") == (0, 15)


def test_status_returncode_and_text():
    assert JobStatus(JobState.COMPLETED, exit_code=0).returncode == 0
    assert JobStatus(JobState.FAILED, exit_code=3).returncode == 3
    assert JobStatus(JobState.CANCELLED, exit_code=0, signal=15).returncode == 143
    assert JobStatus(JobState.TIMEOUT).returncode == 1
    assert JobStatus(JobState.FAILED, exit_code=3, restarts=1).describe() == "FAILED (exit code 3), 1 restart(s)"
    assert not JobState.RUNNING.terminal and JobState.PREEMPTED.terminal
    assert JobStatus(JobState.TIMEOUT).resumable and JobStatus(JobState.PREEMPTED).resumable
    assert JobStatus(JobState.FAILED, exit_code=75).resumable and not JobStatus(JobState.FAILED, exit_code=1).resumable
    assert JobStatus(JobState.FAILED, exit_code=2).user_error and not JobStatus(JobState.RUNNING).resumable


def test_comment_tags_round_trip_and_stay_parseable():
    c = make_comment(flow_run_id="fr-1", content_key="abc;def=1 x", tag="20260101-000000-abcdef")
    assert c.startswith("nemotron:") and " " not in c
    from nemotron_core.execution.owner import current_user, server_identity

    assert parse_comment(c) == {"flow_run": "fr-1", "key": "abc_def_1_x", "job": "20260101-000000-abcdef",
                                "server": server_identity(), "user": current_user()}
    assert parse_comment("someone else's comment") is None


# --------------------------------------------------------------- secrets


def test_secrets_file_is_0600_and_sourceable(tmp_path):
    path = write_secrets_file(tmp_path, {"HF_TOKEN": "hf_x'y z", "WANDB_API_KEY": "k1"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    show = """python3 -c 'import os; print("[%s][%s]" % (os.environ["HF_TOKEN"], os.environ["WANDB_API_KEY"]))'"""
    script = "\n".join(["set -vx", *source_lines(str(path), restore="-vx"), show])
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "[hf_x'y z][k1]"
    assert "+ python3" in out.stderr  # tracing is back on after the secrets were read ...
    assert "hf_x" not in out.stderr and "k1" not in out.stderr  # ... and was off while they were
    assert write_secrets_file(tmp_path / "none", {}) is None and not (tmp_path / "none").exists()


def test_secret_names_from_environment_and_profile():
    env = parse_env_text('[p]\nexecutor = "slurm"\nsecrets = ["MY_PASS_PHRASE"]\n[p.wandb]\napi_key_env = "WB"\n')
    profile = env.profile("p")
    environ = {"HF_TOKEN": "t", "WANDB_API_KEY": "w", "MY_PASS_PHRASE": "p", "WB": "x", "PATH": "/bin",
               "api_key_env": "WANDB_API_KEY", "EMPTY_TOKEN": ""}
    assert secret_names(profile, environ) == ["EMPTY_TOKEN", "HF_TOKEN", "MY_PASS_PHRASE", "WANDB_API_KEY", "WB"]
    assert collect_secrets(profile, environ) == {"HF_TOKEN": "t", "MY_PASS_PHRASE": "p", "WANDB_API_KEY": "w",
                                                 "WB": "x"}
    scrubbed = scrubbed_environ(environ, names=["WB"])
    assert "HF_TOKEN" not in scrubbed and "WB" not in scrubbed and scrubbed["PATH"] == "/bin"


# --------------------------------------------------------------- refs


def test_refs_persist_and_are_found_by_key_and_flow_run(state, tmp_path):
    a = JobRef(backend="slurm", job_dir=str(tmp_path / "j" / "20260101-000000-aaaaaa"), name="r", id="1",
               content_key="k1", flow_run_id="f1").save()
    JobRef(backend="slurm", job_dir=str(tmp_path / "j" / "20260101-000001-bbbbbb"), name="r", id="2",
           content_key="k1", flow_run_id="f2").save()
    assert JobRef.load(a.job_dir) == a
    assert [r.id for r in refs_for_key("k1")] == ["2", "1"]  # newest first
    assert [r.id for r in refs_for_flow_run("f1")] == ["1"]
    assert refs_for_key("other") == []
    with key_lock("k1"):
        pass


# --------------------------------------------------------------- logs


def test_log_follower_hands_out_each_complete_line_once(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    files = [a]
    follower = LogFollower(lambda: files)
    assert follower.read_new() == []  # not there yet
    a.write_text("one\ntw")
    assert follower.read_new() == ["one"]
    with open(a, "a") as fh:
        fh.write("o\nthree\n")
    b.write_text("requeued run\n")
    files.append(b)
    assert follower.read_new() == ["two", "three", "requeued run"]
    with open(a, "a") as fh:
        fh.write("tail without newline")
    assert follower.flush() == ["tail without newline"]

    text = {"v": "x\ny"}
    tf = TextFollower(lambda: text["v"])
    assert tf.read_new() == ["x"]
    text["v"] += "z\n"
    assert tf.read_new() == ["yz"] and tf.flush() == []


# --------------------------------------------------------------- packaging


def test_self_contained_packager_ships_the_script_and_the_toolkit_it_imports(tmp_path):
    from nemotron_core.execution.packaging import SelfContainedPackager, self_contained_files

    root = tmp_path / "proj"
    (root / "kit" / "sub").mkdir(parents=True)
    (root / "kit" / "__init__.py").write_text("")
    (root / "kit" / "a.py").write_text("from .sub import b\nimport json\n")
    (root / "kit" / "sub" / "__init__.py").write_text("")
    (root / "kit" / "sub" / "b.py").write_text("def f():\n    from kit import c\n")
    (root / "kit" / "c.py").write_text("")
    (root / "kit" / "unused.py").write_text("")
    (root / "kit" / "defaults.yaml").write_text("x: 1\n")
    (root / "other").mkdir()
    (root / "other" / "big.py").write_text("")
    (root / "recipes").mkdir()
    script = root / "recipes" / "train.py"
    script.write_text("import kit.a\nimport numpy\n")
    rel = sorted(str(p.relative_to(root)) for p in self_contained_files(script, root))
    assert rel == ["kit/__init__.py", "kit/a.py", "kit/c.py", "kit/defaults.yaml", "kit/sub/__init__.py",
                   "kit/sub/b.py", "recipes/train.py"]
    tar_path = SelfContainedPackager(script_path=str(script), root=str(root)).package(root, str(tmp_path), "code")
    with tarfile.open(tar_path) as tar:
        assert sorted(tar.getnames()) == rel


def test_self_contained_packager_covers_the_real_toolkit():
    from nemotron_core.execution.packaging import self_contained_files
    from nemotron_core.paths import PACKAGE_ROOT

    script = PACKAGE_ROOT / "tests" / "fixtures" / "recipes" / "job" / "job.py"
    names = {str(p.relative_to(PACKAGE_ROOT)) for p in self_contained_files(script)}
    assert names == {"tests/fixtures/recipes/job/job.py"}  # it imports nothing of the project
    probe = PACKAGE_ROOT / "nemotron_core" / "execution" / "jobs.py"
    names = {str(p.relative_to(PACKAGE_ROOT)) for p in self_contained_files(probe)}
    assert {"nemotron_core/__init__.py", "nemotron_core/execution/refs.py", "nemotron_core/errors.py"} <= names
    assert not any(n.startswith(("tests/", "recipes/", ".state/")) for n in names)


def test_code_packager_takes_the_working_tree_minus_excludes(tmp_path):
    from nemotron_core.execution.packaging import CodePackager

    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "m.py").write_text("x = 1\n")
    (root / "notes.txt").write_text("untracked but not ignored\n")
    (root / "ignored.log").write_text("")
    (root / ".gitignore").write_text("*.log\n")
    (root / ".state").mkdir()
    (root / ".state" / "big.bin").write_text("")
    (root / "data").mkdir()
    (root / "data" / "x.bin").write_text("")
    git = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", "pkg/m.py", ".gitignore")
    (root / "pkg" / "m.py").write_text("x = 2  # uncommitted edit\n")
    packager = CodePackager(root=str(root), excludes=[".git", ".state", "data"])
    names = sorted(str(p.relative_to(root)) for p in packager.files())
    assert names == [".gitignore", "notes.txt", "pkg/m.py"]
    tar_path = packager.package(root, str(tmp_path), "code")
    with tarfile.open(tar_path) as tar:
        assert tar.extractfile("pkg/m.py").read() == b"x = 2  # uncommitted edit\n"
    os.remove(tar_path)


def test_packager_choice_follows_profile_then_runspec():
    from nemotron_core.execution.packaging import CodePackager, SelfContainedPackager, choose_packager
    from nemotron_core.errors import ProfileError

    class Spec:
        script_path = Path("/x/train.py")

        class run:
            launch = "torchrun"

    env = parse_env_text('[a]\nexecutor="slurm"\n[b]\nexecutor="slurm"\n'
                         '[c]\nexecutor="slurm"\npackager="code"\ncode_excludes=["*.ckpt"]\n'
                         '[d]\nexecutor="slurm"\npackager="nope"\n[e]\nexecutor="slurm"\npackager="none"\n')
    assert isinstance(choose_packager(env.profile("a"), Spec), SelfContainedPackager)
    code = choose_packager(env.profile("c"), Spec)
    assert isinstance(code, CodePackager) and "*.ckpt" in code.excludes and ".git" in code.excludes
    Spec.run.launch = "ray"
    assert isinstance(choose_packager(env.profile("a"), Spec), CodePackager)
    assert type(choose_packager(env.profile("e"), Spec)).__name__ == "Packager"
    with pytest.raises(ProfileError, match="packager = 'nope' is not one of"):
        choose_packager(env.profile("d"), Spec)
