"""The HF token and the W&B key, picked up the way the seed does: from the environment, else from
the Hugging Face token file and the `api.wandb.ai` entry of ~/.netrc. A submitted job receives them
through its 0600 secrets.env only: their values appear in no other file the run writes, in the
CLI's output, or in the environment the job's launcher is started with."""

from __future__ import annotations

import hashlib
import json
import os
import secrets as random
import stat
import textwrap
from pathlib import Path

import pytest
import typer

from nemotron_cli.app import main
from nemotron_cli.recipe_typer import RecipeTyper
from nemotron_core.secrets import REDACTED, login_secrets, redact_text
from pipeline.stages import Stage

#: A recipe in the seed's header form (`launch = "python"`, no cmd): it records digests of what it received.
RECIPE = '''\
# /// script
# [tool.runspec]
# name = "test/secrets"
# [tool.runspec.run]
# launch = "python"
# [tool.runspec.resources]
# gpus_per_node = 0
# ///
import hashlib, json, os, sys
from pathlib import Path

import yaml

cfg = yaml.safe_load(open(sys.argv[sys.argv.index("--config") + 1]))
out = Path(cfg["output_dir"])
out.mkdir(parents=True, exist_ok=True)
digest = lambda name: hashlib.sha256(os.environ.get(name, "").encode()).hexdigest()
launcher = Path(f"/proc/{os.getppid()}/environ").read_bytes()  # the environment bash launch.sh started with
seen = {"hf": digest("HF_TOKEN"), "wandb": digest("WANDB_API_KEY"), "project": os.environ.get("WANDB_PROJECT"),
        "launcher_env_digest": hashlib.sha256(launcher).hexdigest(),
        "launcher_has_values": [n for n in ("HF_TOKEN", "WANDB_API_KEY") if os.environ[n].encode() in launcher]}
(out / "seen.json").write_text(json.dumps(seen))
(out / "RESULT.json").write_text("{}")
'''


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME with a Hugging Face login and a W&B netrc entry; the environment has neither secret."""
    home = tmp_path / "home"
    (home / ".cache" / "huggingface").mkdir(parents=True)
    values = {"hf": "hf_" + random.token_hex(16), "wandb": random.token_hex(20)}
    (home / ".cache" / "huggingface" / "token").write_text(values["hf"] + "\n")
    netrc = home / ".netrc"
    netrc.write_text(f"machine example.invalid login x password other\nmachine api.wandb.ai\n  login user\n"
                     f"  password {values['wandb']}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    return values


def test_login_files_are_read_when_the_environment_lacks_the_secrets(home, tmp_path, monkeypatch):
    assert login_secrets() == {"HF_TOKEN": home["hf"], "WANDB_API_KEY": home["wandb"]}
    assert redact_text(f"a {home['hf']} b {home['wandb']}") == f"a {REDACTED} b {REDACTED}"
    monkeypatch.setenv("HF_TOKEN", "from-env-token")  # the environment wins, nothing read for it
    monkeypatch.setenv("WANDB_API_KEY", "from-env-key")
    assert login_secrets() == {}


def test_token_file_order_hf_token_path_then_hf_home_then_default(home, tmp_path, monkeypatch):
    (tmp_path / "hfhome").mkdir()
    (tmp_path / "hfhome" / "token").write_text("hf_from_hf_home\n")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert login_secrets()["HF_TOKEN"] == "hf_from_hf_home"
    (tmp_path / "explicit").write_text("hf_explicit")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "explicit"))
    assert login_secrets()["HF_TOKEN"] == "hf_explicit"


def test_odd_login_files_are_skipped_not_fatal(home, tmp_path, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("HF_TOKEN_PATH", str(fifo))  # opening a fifo for reading would block
    monkeypatch.setenv("NETRC", str(tmp_path / "bad-netrc"))
    (tmp_path / "bad-netrc").write_text("machine api.wandb.ai frobnicate x\n")  # netrc: bad follower token
    found = login_secrets()
    assert found.get("HF_TOKEN") == home["hf"] and "WANDB_API_KEY" not in found


def test_a_submitted_job_gets_them_through_secrets_env_only(home, tmp_path, monkeypatch, capsys):
    state = tmp_path / "state"
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(state))
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "env.toml"))
    (tmp_path / "env.toml").write_text('[wandb]\nproject = "seedproj"\n[bg]\nexecutor = "local"\n')
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "recipe" / "step.py"
    (script.parent / "config").mkdir(parents=True)
    (script.parent / "config" / "default.yaml").write_text("output_dir: ???\nx: 1\n")
    script.write_text(textwrap.dedent(RECIPE))
    stage = Stage("test/secrets", str(script), output="test-secrets", output_what="digests")
    cli = RecipeTyper(name="t")

    @cli.recipe(stage, name="step", panel="Test", help="Record digests.")
    def step(ctx: typer.Context) -> None:
        from nemotron_cli.context import split_dotlist
        from nemotron_cli.recipe_run import run_recipe

        raise typer.Exit(run_recipe(stage, ctx.obj, split_dotlist(ctx.args)))

    @cli.command("noop")  # two commands: Typer then reads the first word as the command's name
    def noop() -> None:
        pass

    assert main(["step", "-b", "bg"], cli=cli) == 0, capsys.readouterr().err
    from nemotron_core.execution import Job

    (ref,) = list(state.rglob("jobref.json"))
    status = Job.from_dir(ref.parent).wait(timeout=300)
    printed = capsys.readouterr()
    assert status.returncode == 0, (ref.parent / "job.log").read_text()

    (seen_file,) = list(state.rglob("seen.json"))
    seen = json.loads(seen_file.read_text())
    sha = lambda v: hashlib.sha256(v.encode()).hexdigest()  # noqa: E731
    assert (seen["hf"], seen["wandb"], seen["project"]) == (sha(home["hf"]), sha(home["wandb"]), "seedproj")
    assert seen["launcher_has_values"] == []

    secrets_env = ref.parent / "secrets.env"
    assert stat.S_IMODE(secrets_env.stat().st_mode) == 0o600
    assert home["hf"] in secrets_env.read_text() and home["wandb"] in secrets_env.read_text()
    values = [home["hf"].encode(), home["wandb"].encode()]
    hits = [str(p) for p in state.rglob("*") if p.is_file() and not p.is_symlink() and p != secrets_env
            and any(v in p.read_bytes() for v in values)]
    assert hits == []
    assert not any(v.decode() in printed.out + printed.err for v in values)
