"""Recipe configs in the seed's layout: a `run:` section (artifact aliases, env), `${art:KEY[,FIELD]}`
with metadata fields, `defaults:` composition and `.yml` files. Real registry (local files), real YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from nemotron_core.artifacts import config_lookup, open_registry
from nemotron_core.config import (build_job_config, extract_train_config, parse_config, save_configs,
                                  set_artifact_lookup)
from nemotron_core.errors import ArtifactError, ConfigError, ProfileError
from nemotron_core.profiles import parse_env_text
from nemotron_core.runspec import parse
from tests.cli.test_cli import echo_cli  # noqa: F401  (fixture: a CLI wired like nano3's around the echo recipe)

ECHO = Path(__file__).resolve().parents[1] / "fixtures" / "recipes" / "echo" / "echo.py"

SEED_SFT = """\
run:
  data: nano3-sft-data:latest
  model: nano3-pretrain-model:v1
  env:
    container: nvcr.io/nvidia/nemo:25.11.nemotron_3_nano
    mounts: [/lustre:/lustre]
    startup_commands: ["echo ready"]
    account: null
dataset:
  dir: ${art:data,path}
  seq_length: ${art:data,pack_size}
  version: ${art:data,version}
checkpoint:
  pretrained: ${art:model}
  again: ${art:nano3-pretrain-model:v1,path}
"""


@pytest.fixture
def spec():
    return parse(ECHO)


@pytest.fixture
def registry(tmp_path):
    reg = open_registry({"root": str(tmp_path / "registry")})
    for name, metadata in (("nano3-sft-data", {"pack_size": 64}), ("nano3-pretrain-model", {}),
                           ("nano3-pretrain-model", {"step": 2})):
        src = tmp_path / "src" / name
        src.mkdir(parents=True, exist_ok=True)
        (src / "f.txt").write_text(name + str(metadata))
        reg.publish(name, src, metadata=metadata)
    set_artifact_lookup(config_lookup(reg))
    yield reg
    set_artifact_lookup(None)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----------------------------------------------------------------- run: section

def test_run_aliases_resolve_pin_and_sit_beside_the_provenance(spec, registry, tmp_path):
    cfg = parse_config(tmp_path, str(write(tmp_path / "sft.yaml", SEED_SFT)))
    job = build_job_config(cfg, spec=spec, mode="run")
    data = registry.resolve("nano3-sft-data")
    assert job.dataset.dir == str(data.path) and job.dataset.seq_length == 64 and job.dataset.version == 1
    assert job.checkpoint.pretrained == job.checkpoint.again == str(registry.resolve("nano3-pretrain-model:v1").path)
    # The user's run: is kept as written; the provenance is beside it, the aliases pinned to one version.
    assert job.run.data == "nano3-sft-data:latest" and job.run.model == "nano3-pretrain-model:v1"
    assert job.run.env.container == "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
    assert job.run.mode == "run" and job.run.recipe.name == "test/echo"
    assert dict(job.run.artifacts) == {"nano3-sft-data:latest": "nano3-sft-data:v1",
                                       "nano3-pretrain-model:v1": "nano3-pretrain-model:v1"}
    # The config's run.env overrides the profile: what job.yaml records as resolved is what runs.
    assert job.run.profile.resolved.container_image == "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
    assert list(job.run.profile.resolved.startup_commands) == ["echo ready"]
    job_path, train_path = save_configs(job, extract_train_config(job), tmp_path / "job")
    assert "run" not in yaml.safe_load(train_path.read_text())
    assert yaml.safe_load(job_path.read_text())["run"]["data"] == "nano3-sft-data:latest"


def test_run_alias_override_from_the_command_line(spec, registry, tmp_path):
    path = str(write(tmp_path / "sft.yaml", SEED_SFT))
    job = build_job_config(parse_config(tmp_path, path, ["run.model=nano3-pretrain-model:latest"]), spec=spec)
    assert job.checkpoint.pretrained == str(registry.resolve("nano3-pretrain-model:v2").path)
    assert job.run.artifacts["nano3-pretrain-model:latest"] == "nano3-pretrain-model:v2"
    with pytest.raises(ArtifactError, match=r"\$\{art:model,path\} \(run.model = nope:v1\): no artifact named 'nope'"):
        build_job_config(parse_config(tmp_path, path, ["run.model=nope:v1"]), spec=spec)


def test_art_field_errors_list_what_exists(spec, registry):
    with pytest.raises(ArtifactError, match=r"no field 'nope'.*key of its metadata \(pack_size\)"):
        build_job_config(OmegaConf.create({"x": "${art:nano3-sft-data,nope}"}), spec=spec)
    with pytest.raises(ArtifactError, match=r"aliases in this config's run: section: data"):
        build_job_config(OmegaConf.create({"run": {"data": "nano3-sft-data"}, "x": "${art:dta,path}"}), spec=spec)


@pytest.mark.parametrize("run, message", [
    ({"mode": "fast"}, r"config key 'run.mode' is reserved"),
    ({"artifacts": {}}, r"config key 'run.artifacts' is reserved"),
    ("x", r"config key 'run' must be a section"),
    ({"env": [1]}, r"config key 'run.env' must be a section"),
])
def test_run_section_errors_are_one_line(spec, run, message):
    with pytest.raises(ConfigError, match=message) as e:
        build_job_config(OmegaConf.create({"run": run, "a": 1}), spec=spec)
    assert "\n" not in str(e.value)


def test_run_env_is_checked_like_a_profile_and_the_profile_chooses_the_executor(spec):
    with pytest.raises(ProfileError, match=r"\[run.env\] unknown key 'contaner'.*container"):
        build_job_config(OmegaConf.create({"run": {"env": {"contaner": "x"}}}), spec=spec)
    profile = parse_env_text('[dev]\nexecutor = "slurm"\naccount = "a"\nmounts = ["/data:/data"]\n'
                             '[dev.env]\nA = "1"\n').profile("dev")
    job = build_job_config(OmegaConf.create({"run": {"env": {"executor": "local", "mounts": ["/lustre:/lustre"],
                                                             "env": {"B": "2"}, "account": None}}}),
                           spec=spec, profile=profile, mode="run")
    resolved = job.run.profile.resolved
    assert resolved.executor == "slurm" and resolved.account == "a"
    assert list(resolved.mounts) == ["/data:/data", "/lustre:/lustre"] and dict(resolved.env) == {"A": "1", "B": "2"}


# ----------------------------------------------------------------- defaults: and .yml

def test_defaults_compose_in_order_with_groups_and_self(tmp_path):
    write(tmp_path / "base.yml", "a: 1\nb: {x: 1, y: 1}\nlst: [1, 2]\n")
    write(tmp_path / "model" / "small.yaml", "hidden: 8\n")
    write(tmp_path / "exp.yaml", "defaults:\n  - base\n  - _self_\n  - model: small\nb: {x: 2}\nlst: [3]\n"
                                 "model: {hidden: 99, layers: 2}\n")
    cfg = parse_config(tmp_path, "exp")
    assert OmegaConf.to_container(cfg) == {"a": 1, "b": {"x": 2, "y": 1}, "lst": [3],
                                           "model": {"hidden": 8, "layers": 2}}
    write(tmp_path / "plain.yml", "defaults: [base]\na: 5\n")  # `.yml` by name; _self_ last when not listed
    assert parse_config(tmp_path, "plain").a == 5
    assert parse_config(tmp_path, "plain", ["b.y=3"]).b.y == 3


def test_defaults_cycle_and_escape_are_one_line_errors(tmp_path):
    write(tmp_path / "a.yaml", "defaults: [b]\n")
    write(tmp_path / "b.yaml", "defaults: [c]\n")
    write(tmp_path / "c.yaml", "defaults: [a]\n")
    with pytest.raises(ConfigError, match=r"defaults cycle: a.yaml -> b.yaml -> c.yaml -> a.yaml") as e:
        parse_config(tmp_path, "a")
    assert "\n" not in str(e.value)
    write(tmp_path / "self.yaml", "defaults: [self]\n")
    with pytest.raises(ConfigError, match=r"defaults cycle: self.yaml -> self.yaml"):
        parse_config(tmp_path, "self")
    for entry in ("../outside", "/etc/passwd", "{g: ../x}", "missing", "{g: null, h: 1}", "3"):
        write(tmp_path / "bad.yaml", f"defaults: [{entry}]\n")
        with pytest.raises(ConfigError, match=r"bad.yaml: defaults\[0\]") as e:
            parse_config(tmp_path, "bad")
        assert "\n" not in str(e.value)
    outside = write(tmp_path.parent / f"{tmp_path.name}-outside.yaml", "secret: 1\n")
    (tmp_path / "link.yaml").symlink_to(outside)
    write(tmp_path / "bad.yaml", "defaults: [link]\n")
    with pytest.raises(ConfigError, match="leads outside the config folder"):
        parse_config(tmp_path, "bad")


# ----------------------------------------------------------------- ${auto_mount:git+URL@REF[,TARGET]}

def git(*args: str, cwd: Path) -> str:
    import subprocess

    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path) -> tuple[str, dict[str, str]]:
    """A bare repository served over file:// with a tag v1 and a branch main one commit later."""
    bare, work = tmp_path / "origin.git", tmp_path / "work"
    git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("init", "--quiet", "-b", "main", str(work), cwd=tmp_path)
    shas = {}
    for tag, text in (("v1", "one"), (None, "two")):
        (work / "f.txt").write_text(text)
        git("add", "f.txt", cwd=work)
        git("commit", "--quiet", "-m", text, cwd=work)
        if tag:
            git("tag", tag, cwd=work)
        shas[tag or "main"] = git("rev-parse", "HEAD", cwd=work)
    git("push", "--quiet", "--tags", str(bare), "main", cwd=work)
    return f"file://{bare}", shas


def test_auto_mount_git_resolves_without_io_and_clones_at_submit_time(spec, origin, tmp_path, monkeypatch):
    from nemotron_core.config.git_mounts import clone_repo
    from nemotron_core.paths import state_dir

    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))

    url, shas = origin
    train = OmegaConf.create({"code": f"${{auto_mount:git+{url}@v1,/opt/code}}", "head": f"${{auto_mount:git+{url}@main}}"})
    local = build_job_config(train, spec=spec, mode="local")
    cache = state_dir() / "cache" / "git"
    assert Path(local.code).parent == cache and not Path(local.code).exists()  # resolving clones nothing
    repos = {r.ref: dict(r) for r in local.run.repos}
    assert repos["v1"] == {"url": url, "ref": "v1", "path": local.code, "target": "/opt/code"}
    remote = build_job_config(train, spec=spec, mode="run", remote=True)
    assert remote.code == "/opt/code" and remote.head == "/nemo_run/repos/origin"
    assert f"{local.code}:/opt/code" in list(remote.run.mounts)
    # Submit time: each checkout at its commit, reused when it already holds it.
    assert clone_repo(repos["v1"]) == shas["v1"] and (Path(local.code) / "f.txt").read_text() == "one"
    assert clone_repo(repos["main"]) == shas["main"] and (Path(local.head) / "f.txt").read_text() == "two"
    assert clone_repo(repos["v1"]) == shas["v1"]
    assert [p.name for p in cache.iterdir() if ".tmp." in p.name] == []


@pytest.mark.parametrize("src", [
    "git+{url}@-x", "git+{url}@--upload-pack=touch pwned", "git+{url}@a..b", "git+{url}@main;id", "git+{url}",
    "git+ext::sh -c touch%20pwned@main", "git+{url} --upload-pack=x@main", "git+-u@main", "git+{url}@main,rel/dir",
    "git+{url}@main,/opt/../etc", "git+https://me:hunter2@example.com/r.git@main",
])
def test_auto_mount_git_refuses_option_and_shell_injection(spec, origin, src):
    url, _ = origin
    args = ",".join(f"'{part}'" for part in src.format(url=url).split(","))  # quoted: reaches the resolver as is
    with pytest.raises(ConfigError, match=r"auto_mount") as e:
        build_job_config(OmegaConf.create({"code": "${auto_mount:" + args + "}"}), spec=spec)
    assert "\n" not in str(e.value) and "hunter2" not in str(e.value)


def test_a_missing_commit_fails_in_one_line(origin, tmp_path):
    from nemotron_core.config.git_mounts import clone_repo
    from nemotron_core.errors import NemotronError

    url, _ = origin
    with pytest.raises(NemotronError, match=r"clone into .* failed: no commit named nope") as e:
        clone_repo({"url": url, "ref": "nope", "path": str(tmp_path / "cache" / "x")})
    assert "\n" not in str(e.value) and not (tmp_path / "cache" / "x").exists()


def test_a_local_run_clones_the_checkout_its_config_names(origin, echo_cli, tmp_path):
    """Through the CLI's recipe path (pipeline.run_stage): the dry run clones nothing, the run clones the
    commit into the state folder's git cache and the script reads that folder."""
    import json

    from nemotron_cli.app import main

    url, shas = origin
    line = ["echo", "-c", "tiny", f"output_dir={tmp_path}/out", f"+code=${{auto_mount:git+{url}@v1}}"]
    assert main([*line, "--dry-run"], cli=echo_cli) == 0
    assert not (tmp_path / "state" / "cache").exists()
    assert main(line, cli=echo_cli) == 0
    code = Path(json.loads((tmp_path / "out" / "echo.json").read_text())["config"]["code"])
    assert code.parent == tmp_path / "state" / "cache" / "git" and (code / "f.txt").read_text() == "one"
    assert git("rev-parse", "HEAD", cwd=code) == shas["v1"]
    job_yaml, = (tmp_path / "state" / "jobs").glob("*/*/job.yaml")
    assert yaml.safe_load(job_yaml.read_text())["run"]["repos"][0]["commit"] == shas["v1"]


@pytest.mark.slow
def test_a_checkout_is_cloned_on_the_cluster_through_the_ssh_tunnel(sshd_server, origin, tmp_path):
    """The Slurm path of clone_repos: the same clone, run by the cluster's shell over SSH (this host's sshd)."""
    from nemotron_core.config.git_mounts import clone_repo
    from nemotron_core.execution.backends.slurm_shell import SlurmShell
    from nemotron_core.execution.ssh import ssh_cluster
    from nemotron_core.profiles import Profile

    url, shas = origin
    cluster = ssh_cluster(Profile(name="login", data={"executor": "slurm", **sshd_server.profile()}, chain=("login",),
                                  source=None))
    shell = SlurmShell(cluster)
    try:
        path = tmp_path / "git_dir" / "origin-x"
        repo = {"url": url, "ref": "main", "path": str(path)}
        assert clone_repo(repo, lambda argv: shell.run(argv, timeout=600)) == shas["main"]
        assert (path / "f.txt").read_text() == "two"
    finally:
        shell.close()


def test_run_wandb_comes_from_env_toml_unless_the_config_sets_it(spec, tmp_path):
    from nemotron_core.config.run_section import fill_run_wandb

    cfg = parse_config(tmp_path, str(write(tmp_path / "c.yaml", "run:\n  wandb: {project: null, entity: mine}\n"
                                                                 "log: {project: '${run.wandb.project}', "
                                                                 "entity: '${run.wandb.entity}'}\n")))
    fill_run_wandb(cfg, {"project": "team-proj", "entity": "team", "api_key_env": "WANDB_API_KEY"})
    job = build_job_config(cfg, spec=spec)
    assert dict(job.log) == {"project": "team-proj", "entity": "mine"}
    bare = OmegaConf.create({"log": "${run.wandb.project}"})
    fill_run_wandb(bare, {"project": "p"})
    assert build_job_config(bare, spec=spec).log == "p"
