"""The config pipeline: parse_config, overrides, job.yaml provenance, resolvers, save."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st
from omegaconf import OmegaConf

from nemotron_core.config import (apply_overrides, build_job_config, extract_train_config, generate_job_dir,
                                  parse_config, save_configs, set_artifact_lookup)
from nemotron_core.errors import ArtifactError, ConfigError, NemotronError
from nemotron_core.profiles import parse_env_text
from nemotron_core.runspec import parse

ECHO = Path(__file__).resolve().parents[1] / "fixtures" / "recipes" / "echo" / "echo.py"


@pytest.fixture
def spec():
    return parse(ECHO)


@pytest.fixture
def lookup():
    """An artifact lookup whose `latest` moves on every call, like a busy registry."""
    calls = []
    latest = {"n": 3}

    def fn(ref, field):
        calls.append(ref)
        name, _, version = ref.partition(":")
        if name == "missing":
            raise ArtifactError(f"artifact '{name}' not found")
        v = int(version[1:]) if version.startswith("v") else latest["n"]
        latest["n"] += 1  # a concurrent writer publishes between two lookups
        return f"/store/{name}/v{v}/{field}", f"{name}:v{v}"

    set_artifact_lookup(fn)
    yield calls
    set_artifact_lookup(None)


# ----------------------------------------------------------------- parse_config

def test_config_by_name_and_by_path(spec, tmp_path):
    assert parse_config(spec.config_dir, "tiny").model.hidden == 128
    assert parse_config(spec.config_dir, None).model.hidden == 1024  # the runspec default
    other = tmp_path / "mine.yaml"
    other.write_text("model: {hidden: 7}\n")
    assert parse_config(spec.config_dir, str(other)).model.hidden == 7


def test_unknown_config_name_lists_choices(spec):
    with pytest.raises(ConfigError, match=r"config 'tinny' not found in .*\(did you mean 'tiny'\?\); available: default, tiny"):
        parse_config(spec.config_dir, "tinny")


def test_missing_config_path(spec):
    with pytest.raises(ConfigError, match="config file /no/such.yaml not found"):
        parse_config(spec.config_dir, "/no/such.yaml")


def test_invalid_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=rf"{bad}:\d+: invalid YAML"):
        parse_config(tmp_path, str(bad))


def test_top_level_must_be_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config(tmp_path, str(bad))


# ----------------------------------------------------------------- overrides

def test_overrides_set_add_remove(spec):
    cfg = parse_config(spec.config_dir, "tiny", ["train.lr=1e-3", "+train.warmup=50", "~exit_code",
                                                "train.schedule.1=9", "model.layers=null", "+tags=[a, b]"])
    assert cfg.train.lr == 1e-3 and cfg.train.warmup == 50
    assert "exit_code" not in cfg
    assert list(cfg.train.schedule) == [1, 9, 3]
    assert cfg.model.layers is None
    assert list(cfg.tags) == ["a", "b"]


def test_override_of_unknown_key_lists_near_keys(spec):
    with pytest.raises(ConfigError) as err:
        parse_config(spec.config_dir, "tiny", ["train.lrr=1"])
    assert "no key 'train.lrr'" in str(err.value)
    assert "near keys: train.lr" in str(err.value)
    assert "+train.lrr" in str(err.value)


@pytest.mark.parametrize("item,message", [
    ("+train.lr=1", "already exists; drop the '+'"),
    ("~train.nope", "cannot remove 'train.nope'"),
    ("train.lr", "expected key=value"),
    ("train..lr=1", "not a valid dotted key"),
    ("train.lr={a: [", "is not valid YAML"),
    ("train.lr.x=1", "no key 'train.lr.x'"),
    ("+train.lr.x=1", "'train.lr' is a value, not a section"),
])
def test_bad_overrides(spec, item, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(spec.config_dir, "tiny", [item])


dotlist_word = st.one_of(
    st.text(max_size=30),
    st.builds(lambda p, k, v: f"{p}{k}={v}", st.sampled_from(["", "+", "~"]),
              st.sampled_from(["train.lr", "model", "a.b.c", "train.schedule.7", "x", "train", "model.hidden.x", ""]),
              st.text(max_size=10)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(dotlist_word, max_size=5))
def test_fuzzed_dotlists_raise_only_config_errors(lines):
    cfg = OmegaConf.create({"train": {"lr": 1.0, "schedule": [1, 2]}, "model": {"hidden": 3}})
    try:
        apply_overrides(cfg, lines)
    except ConfigError as e:
        assert "\n" not in str(e)


# ----------------------------------------------------------------- job config

def test_job_config_records_provenance(spec):
    env = parse_env_text('[dev]\nexecutor = "slurm"\naccount = "acc"\nsecrets = ["DB_PASS"]\n'
                         '[dev.env]\nHF_TOKEN = "hf_live"\nDB_PASS = "db_live"\nNCCL_DEBUG = "WARN"\n')
    train = parse_config(spec.config_dir, "tiny", ["train.lr=0.5"])
    job = build_job_config(train, spec=spec, mode="batch", profile=env.profile("dev"),
                           argv=["nano3", "x", "-c", "tiny"], dotlist=["train.lr=0.5"], passthrough=["--v"],
                           config_name="tiny")
    run = job.run
    assert run.mode == "batch"
    assert run.profile.name == "dev" and run.profile.executor == "slurm"
    assert run.profile.resolved.account == "acc"
    assert run.profile.resolved.env.HF_TOKEN == "***REDACTED***"  # named like a secret
    assert run.profile.resolved.env.DB_PASS == "***REDACTED***"  # declared by the profile
    assert run.profile.resolved.env.NCCL_DEBUG == "WARN"
    assert list(run.cli.dotlist) == ["train.lr=0.5"] and list(run.cli.passthrough) == ["--v"]
    assert run.cli.config == "tiny"
    assert run.recipe.name == "test/echo" and run.recipe.runspec_digest == spec.digest
    assert run.git.commit is None or len(run.git.commit) == 40
    assert run.version
    assert job.train.lr == 0.5
    text = OmegaConf.to_yaml(job)
    assert "abc123" not in text and "hf_live" not in text


def test_run_provenance_keys_are_reserved(spec):  # a config's own run: section: tests/core/test_seed_configs.py
    with pytest.raises(ConfigError, match="reserved"):
        build_job_config(OmegaConf.create({"run": {"mode": 1}}), spec=spec)


@pytest.mark.parametrize("value", ["literal-secret", 12345678901, 1.5, ["a", "b"], {"user": "u", "pw": "p"}])
def test_secret_literal_in_config_is_rejected(spec, value):
    train = OmegaConf.create({"wandb": {"api_key": value}})
    with pytest.raises(ConfigError, match=r"config key 'wandb.api_key(\.\w+)?' is named like a secret and holds a "
                                          r"literal value .*write \$\{oc.env:VAR\}") as e:
        build_job_config(train, spec=spec)
    assert "12345678901" not in str(e.value) and "literal-secret" not in str(e.value)


def test_secret_env_reference_is_kept_unresolved(spec, monkeypatch):
    monkeypatch.setenv("MY_SECRET_TOKEN", "tok-999")
    train = OmegaConf.create({"wandb": {"api_key": "${oc.env:MY_SECRET_TOKEN}"}})
    job = build_job_config(train, spec=spec)
    written = OmegaConf.to_yaml(job)
    assert "${oc.env:MY_SECRET_TOKEN}" in written  # resolved by the job at run time
    assert "tok-999" not in written


@pytest.mark.parametrize("expr", ["${oc.env:MY_SECRET_TOKEN}", "${oc.decode:${oc.env:MY_SECRET_TOKEN}}",
                                  "postgres://u:${oc.env:MY_SECRET_TOKEN}@db", "${oc.env:MY_SECRET_TOKEN,dflt}"])
def test_a_plain_key_reading_a_secret_keeps_its_expression(spec, monkeypatch, expr):
    monkeypatch.setenv("MY_SECRET_TOKEN", "tok-999-long-value")
    train = OmegaConf.create({"logging": {"user": expr, "plain": "${oc.env:HOME}"}})
    job = build_job_config(train, spec=spec)
    written = OmegaConf.to_container(job, resolve=False)
    assert written["logging"] == {"user": expr, "plain": os.environ["HOME"]}
    assert "tok-999" not in OmegaConf.to_yaml(job)
    assert job.logging.user.startswith(("tok-999", "postgres://u:tok-999"))  # what the job gets when it resolves


def test_a_profile_declared_secret_is_kept_and_its_value_never_written(spec, monkeypatch):
    monkeypatch.setenv("DB_PASS", "hunter2-db-pass")
    profile = parse_env_text('[p]\nsecrets = ["DB_PASS"]\n').profile("p")
    train = OmegaConf.create({"train": {"db": "${oc.env:DB_PASS}", "via": "${train.db}"}})
    job = build_job_config(train, spec=spec, profile=profile)
    written = OmegaConf.to_container(job, resolve=False)["train"]
    assert written == {"db": "${oc.env:DB_PASS}", "via": "${train.db}"}
    assert "hunter2" not in OmegaConf.to_yaml(job)
    with pytest.raises(ConfigError, match=r"config key 'train.db' holds the value of the secret \$DB_PASS") as e:
        build_job_config(OmegaConf.create({"train": {"db": "hunter2-db-pass"}}), spec=spec, profile=profile)
    assert "hunter2" not in str(e.value)


def test_a_secret_cannot_feed_a_toolkit_resolver(spec, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijkl")
    with pytest.raises(ConfigError, match=r"reads a secret through \$\{auto_mount"):
        build_job_config(OmegaConf.create({"hf_token": "${auto_mount:/x}${oc.env:HF_TOKEN}"}), spec=spec)
    with pytest.raises(ConfigError, match="secret") as e:
        build_job_config(OmegaConf.create({"m": "${art:${oc.env:HF_TOKEN},path}"}), spec=spec)
    assert "hf_abc" not in str(e.value)


def test_interpolation_chains_fail_in_one_line(spec):
    chain = {f"k{i}": f"${{k{i + 1}}}" for i in range(3000)}
    chain["k3000"] = 1
    try:
        job = build_job_config(OmegaConf.create(chain), spec=spec)
        assert job.k0 == 1
    except ConfigError as e:
        assert "\n" not in str(e)


def test_missing_interpolation_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="config key"):
        build_job_config(OmegaConf.create({"a": "${nope.x}"}), spec=spec)


def test_art_resolves_to_one_pinned_version_recorded_in_job(spec, lookup):
    train = OmegaConf.create({"model": "${art:nano3-sft-model,path}", "again": "${art:nano3-sft-model,path}",
                              "data": "${art:nano3-rl-data:v2,path}", "tok": "${art:nano3-sft-model:best,path}"})
    job = build_job_config(train, spec=spec)
    # `latest` moved between the two lookups, but both fields name the same version.
    assert job.model == job.again == "/store/nano3-sft-model/v3/path"
    assert job.data == "/store/nano3-rl-data/v2/path"
    assert job.run.artifacts["nano3-sft-model"] == "nano3-sft-model:v3"
    assert job.run.artifacts["nano3-rl-data:v2"] == "nano3-rl-data:v2"
    assert "nano3-sft-model:best" in job.run.artifacts


def test_art_errors(spec, lookup):
    with pytest.raises(ArtifactError, match="artifact 'missing' not found"):
        build_job_config(OmegaConf.create({"m": "${art:missing,path}"}), spec=spec)
    with pytest.raises(ConfigError, match="expected"):
        build_job_config(OmegaConf.create({"m": "${art:''}"}), spec=spec)
    # FIELD defaults to path, as in the seed.
    assert build_job_config(OmegaConf.create({"m": "${art:nano3-sft-model}"}), spec=spec).m.endswith("/path")


def test_art_without_registry_is_a_clear_error(spec):
    set_artifact_lookup(None)
    with pytest.raises(ArtifactError, match="no artifact registry is configured"):
        build_job_config(OmegaConf.create({"m": "${art:x,path}"}), spec=spec)


def test_auto_mount_local_and_remote(spec):
    train = OmegaConf.create({"data": "${auto_mount:/lustre/data/web}", "ckpt": "${auto_mount:/lustre/ck,/ckpt}"})
    local = build_job_config(train, spec=spec, mode="local")
    assert local.data == "/lustre/data/web" and list(local.run.mounts) == []
    no_container = build_job_config(train, spec=spec, mode="run")  # a profile without container_image
    assert no_container.data == "/lustre/data/web" and list(no_container.run.mounts) == []
    remote = build_job_config(train, spec=spec, mode="run", remote=True)  # what a container_image profile gives
    assert remote.data == "/nemo_run/mounts/web" and remote.ckpt == "/ckpt"
    assert list(remote.run.mounts) == ["/lustre/data/web:/nemo_run/mounts/web", "/lustre/ck:/ckpt"]
    with pytest.raises(ConfigError, match="absolute host path"):
        build_job_config(OmegaConf.create({"d": "${auto_mount:rel/path}"}), spec=spec)


def test_extract_train_config_drops_run_and_rewrites_code_paths(spec, tmp_path, monkeypatch):
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))  # (tmp_path lies in the test state folder)
    code = tmp_path / "repo"
    train = OmegaConf.create({"tok": f"{code}/recipes/tok.json", "other": "/data/x", "lst": [f"{code}/a"]})
    job = build_job_config(train, spec=spec, mode="run")
    local = extract_train_config(job, for_remote=False)
    assert "run" not in local and local.tok == f"{code}/recipes/tok.json"
    remote = extract_train_config(job, for_remote=True, code_root=code, remote_root="/nemo_run/code")
    assert remote.tok == "/nemo_run/code/recipes/tok.json"
    assert remote.other == "/data/x" and list(remote.lst) == ["/nemo_run/code/a"]


def test_save_configs_writes_both_atomically(spec, tmp_path):
    job = build_job_config(parse_config(spec.config_dir, "tiny"), spec=spec)
    job_path, train_path = save_configs(job, extract_train_config(job), tmp_path / "job")
    assert yaml.safe_load(job_path.read_text())["run"]["recipe"]["name"] == "test/echo"
    assert "run" not in yaml.safe_load(train_path.read_text())
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == ["job.yaml", "train.yaml"]  # no temp files left


def test_job_dirs_are_unique_and_under_the_state_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path))
    a, b = generate_job_dir("nano3/pretrain"), generate_job_dir("nano3/pretrain")
    assert a != b and a.parent == tmp_path / "jobs" / "nano3-pretrain"


@pytest.mark.parametrize("name,secret", [
    ("tokenizer_path", False), ("max_tokens", False), ("content_key", False), ("key_storage", False),
    ("api_key", True), ("wandb_api_key", True), ("hf_token", True), ("password", True), ("apiKey", True),
    ("aws_secret_access_key", True), ("access_key", True), ("api_key_env", False),
    ("eos_token_id", False), ("pad_token", False), ("token_count", False), ("token", True), ("auth_token", True),
])
def test_secret_config_keys_are_word_based(name, secret):
    from nemotron_core.secrets import is_secret_key

    assert is_secret_key(name) is secret


def test_tokenizer_path_is_an_ordinary_key(spec):
    job = build_job_config(OmegaConf.create({"tokenizer_path": "/data/tok", "max_tokens": 5}), spec=spec)
    assert job.tokenizer_path == "/data/tok"


def test_a_mandatory_value_can_be_set_by_override():
    cfg = apply_overrides(OmegaConf.create({"output_dir": "???", "a": {"b": "???"}}), ["output_dir=/x", "a.b=1"])
    assert cfg.output_dir == "/x" and cfg.a.b == 1


def test_extract_train_config_keeps_state_paths_inside_the_checkout(spec, tmp_path, monkeypatch):
    """A state folder inside the checkout (`.state/`) holds data, not code: its paths are not shipped."""
    code = tmp_path / "repo"
    state = code / ".state"
    state.mkdir(parents=True)
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(state))
    train = OmegaConf.create({"out": f"{state}/outputs/x", "tok": f"{code}/recipes/tok.json"})
    remote = extract_train_config(build_job_config(train, spec=spec, mode="run"), for_remote=True, code_root=code,
                                  remote_root="/nemo_run/code")
    assert remote.out == f"{state}/outputs/x" and remote.tok == "/nemo_run/code/recipes/tok.json"
