"""env.toml: discovery, extends, special sections, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from nemotron_core.errors import ProfileError
from nemotron_core.profiles import find_env_file, load_env, parse_env_text

ENV = """
[base]
executor = "slurm"
account = "acct"
partition = "batch"
mounts = ["/lustre:/lustre"]
[base.env]
NCCL_DEBUG = "WARN"

[gpu]
gpus_per_node = 8

[dev]
extends = ["base", "gpu"]
partition = "dev"
mounts = ["/scratch:/scratch"]
[dev.env]
EXTRA = "1"

[wandb]
project = "nano3"
api_key_env = "WANDB_API_KEY"

[artifacts]
root = "s3://bucket/arts"
"""


def test_extends_deep_merges_tables_and_replaces_lists():
    p = parse_env_text(ENV).profile("dev")
    assert p.executor == "slurm"
    assert p.data["account"] == "acct" and p.data["partition"] == "dev" and p.data["gpus_per_node"] == 8
    assert p.data["mounts"] == ["/scratch:/scratch"]
    assert p.data["env"] == {"NCCL_DEBUG": "WARN", "EXTRA": "1"}
    assert p.chain == ("dev", "base", "gpu")
    assert "extends" not in p.data


def test_builtin_local_profile_without_any_file():
    env = load_env(None, start=Path("/"))
    assert env.path is None
    assert env.profile(None).data == {"executor": "local", "nproc_per_node": 1}


def test_local_table_is_merged_over_the_builtin():
    assert parse_env_text("[local]\nnproc_per_node = 2\n").profile("local").data["nproc_per_node"] == 2


def test_special_sections_are_not_profiles():
    env = parse_env_text(ENV)
    assert env.section("wandb")["project"] == "nano3"
    assert env.section("artifacts")["root"] == "s3://bucket/arts"
    assert "wandb" not in env.names()
    with pytest.raises(ProfileError, match="'wandb' is a special section"):
        env.profile("wandb")


def test_cycle_shows_the_chain():
    env = parse_env_text('[a]\nextends = "b"\n[b]\nextends = ["c"]\n[c]\nextends = "a"\n')
    with pytest.raises(ProfileError, match="cycle: a -> b -> c -> a"):
        env.profile("a")


def test_unknown_profile_lists_available():
    with pytest.raises(ProfileError, match=r"unknown profile 'deb'.*\(did you mean 'dev'\?\); available: base, dev, gpu, local"):
        parse_env_text(ENV).profile("deb")


def test_unknown_parent():
    with pytest.raises(ProfileError, match="unknown profile 'nope'"):
        parse_env_text('[a]\nextends = "nope"\n').profile("a")


@pytest.mark.parametrize("text,message", [
    ('[a]\nexecutor = "slurmm"\n', r"executor = 'slurmm' is not one of .*\(did you mean 'slurm'\?\)"),
    ("[a]\nextends = 3\n", "must be a profile name or a list"),
    ('[a]\nsecrets = "HF_TOKEN"\n', "must be a list of environment variable names"),
    ("name = 1\n", "must be tables"),
    ("[a\n", "invalid TOML"),
])
def test_invalid_files(text, message):
    with pytest.raises(ProfileError, match=message):
        parse_env_text(text)


@pytest.mark.parametrize("kind", ["local", "slurm", "ray", "docker", "dgxcloud", "lepton", "skypilot"])
def test_all_executor_kinds_pass_through(kind):
    assert parse_env_text(f'[p]\nexecutor = "{kind}"\nx = 1\n').profile("p").data == {"executor": kind, "x": 1}


def test_discovery_env_var_then_walk_up_to_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    project = tmp_path / "proj"
    (project / "a" / "b").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "env.toml").write_text("[x]\n")
    assert find_env_file(project / "a" / "b") == project / "env.toml"
    (tmp_path / "env.toml").write_text("[outside]\n")  # above the project root: never used
    (project / "env.toml").unlink()
    assert find_env_file(project / "a" / "b") is None
    explicit = tmp_path / "custom.toml"
    explicit.write_text("[y]\n")
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(explicit))
    assert find_env_file(project) == explicit
    assert "y" in load_env().names()
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ProfileError, match="NEMOTRON_ENV_FILE=.*missing.toml: no such file"):
        find_env_file(project)


toml_line = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["[a]", "[b]", "[wandb]", 'extends = "a"', 'extends = ["b", "a"]', "extends = 1",
                     'executor = "slurm"', 'executor = "k8s"', "secrets = [1]", "x = [", "[a.env]", "K = 1",
                     "[[a]]", 'extends = "wandb"']),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(toml_line, max_size=10), st.sampled_from(["a", "b", "local", "wandb", "zz"]))
def test_fuzzed_env_files_raise_only_profile_errors(lines, name):
    try:
        parse_env_text("\n".join(lines)).profile(name)
    except ProfileError as e:
        assert "\n" not in str(e)
