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
    assert parse_env_text(f'[p]\nexecutor = "{kind}"\nnodes = 1\n').profile("p").data == {"executor": kind, "nodes": 1}


@pytest.mark.parametrize("text,message", [
    ('[p]\npartiton = "batch"\n', r"\[p\] unknown key 'partiton' \(did you mean 'partition'\?\)"),
    ("[p]\ngpus_per_nod = 8\n", r"\[p\] unknown key 'gpus_per_nod' \(did you mean 'gpus_per_node'\?\)"),
    ('[p.wandb]\nprojct = "x"\n', r"\[p\] unknown key 'wandb.projct' \(did you mean 'project'\?\)"),
    ('[cache]\ngit_dri = "x"\n', r"\[cache\] unknown key 'git_dri' \(did you mean 'git_dir'\?\)"),
    ('[p]\nmounts = "/a:/b"\n', r"\[p\] mounts = '/a:/b': must be a list of \"HOST:CONTAINER\" strings"),
    ("[p]\nmounts = [1, 2]\n", r"\[p\] mounts.0 = 1: mounts must be a list of"),
    ('[p]\nenv = "FOO=1"\n', r"\[p\] env = 'FOO=1': must be a table of NAME = value"),
    ('[p]\nadditional_parameters = "x"\n', r"\[p\] additional_parameters = 'x': must be a table"),
    ('[p]\nnodes = "2"\n', r"\[p\] nodes = '2': must be a non-negative integer"),
    ('[p]\nexclusive = "yes"\n', r"\[p\] exclusive = 'yes': must be true or false"),
    ('[p]\npartition = "a\\nb"\n', r"\[p\] partition holds a control character"),
    ('[p.env]\n"A=1;touch X" = "v"\n', r"\[p\] env: 'A=1;touch X' is not an environment variable name"),
    ('[p]\nsecrets = ["1X"]\n', r"\[p\] secrets.0: '1X' is not an environment variable name"),
    ('[p.env]\nHF_TOKEN = [1]\n', r"\[p\] env.HF_TOKEN: must be a string"),  # a secret's value is not shown
])
def test_schema_errors_name_the_profile_key_and_expected_type(text, message):
    with pytest.raises(ProfileError, match=message):
        parse_env_text(text)


def test_schema_accepts_every_documented_key():
    text = """
[p]
executor = "slurm"
account = "a"
partition = "b"
run_partition = "c"
batch_partition = "d"
nodes = 2
gpus_per_node = 8
ntasks_per_node = 8
nproc_per_node = 8
cpus_per_task = 4
mem = "64G"
time = "04:00:00"
qos = "q"
gres = "gpu:8"
constraint = "h100"
exclusive = true
retries = 1
container_image = "nvcr.io/x"
mounts = ["/lustre:/lustre"]
squash = true
squash_dir = "/sq"
squash_time = "00:30:00"
tunnel = "ssh"
host = "login"
user = "me"
port = 22
identity = "~/.ssh/id"
remote_job_dir = "/lustre/jobs"
slurm_conf = "/etc/slurm/slurm.conf"
packager = "code"
code_excludes = ["*.ckpt"]
python = "python3"
startup_commands = ["module load x"]
secrets = ["HF_TOKEN", "db_pass"]
rdzv_port = 29500
ray_port = 6380
output_root = "/out"
additional_parameters = {mail-type = "END", requeue = true}
[p.env]
NCCL_DEBUG = "WARN"
http_proxy = "http://proxy:3128"
OMP_NUM_THREADS = 4
[p.wandb]
entity = "e"
project = "p"
mode = "offline"
api_key_env = "WANDB_API_KEY"
[r]
executor = "ray"
address = "http://127.0.0.1:8265"
entrypoint_num_cpus = 0.5
env_vars = {A = "1"}
[wandb]
project = "nano3"
api_key_env = "WANDB_API_KEY"
[cache]
git_dir = "/c"
results = "s3://b/r"
[artifacts]
root = "s3://bucket/arts"
storage_options = {anon = false}
[cli]
anything = 1
"""
    env = parse_env_text(text)
    assert env.profile("p").data["env"]["http_proxy"] == "http://proxy:3128"  # case kept
    assert env.profile("r").executor == "ray"


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


def test_declared_secrets_are_redacted_from_every_error(monkeypatch):
    from nemotron_core.errors import ArtifactError
    from nemotron_core.secrets import REDACTED

    monkeypatch.setenv("DB_PASS", "db-pass-value-1")
    monkeypatch.setenv("HF_TOKEN", "hf-token-value-2")
    monkeypatch.setenv("WB", "wandb-key-value-3")
    parse_env_text('[p]\nsecrets = ["DB_PASS"]\n[q.wandb]\napi_key_env = "WB"\n')
    message = str(ArtifactError("no artifact named 'db-pass-value-1' or hf-token-value-2 or wandb-key-value-3"))
    assert message == f"no artifact named '{REDACTED}' or {REDACTED} or {REDACTED}"
    parse_env_text("[p]\n")  # the env.toml loaded last declares nothing: DB_PASS is an ordinary variable again
    assert "db-pass-value-1" in str(ArtifactError("db-pass-value-1"))
