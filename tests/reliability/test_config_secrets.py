"""Secrets reached through configs never land in clear: not in job.yaml/train.yaml, output or errors.

Each case runs the real `nemotron` CLI with fresh random secret values in its environment,
a temporary env.toml and its own state folder, then searches stdout, stderr and every byte
under the state folder for the values. A value counts as secret when its variable is named
like one (HF_TOKEN) or the profile declares it (`secrets = ["DB_PASS"]`), whatever the
config key that reads it and however the read is nested (`${oc.decode:${oc.env:...}}`).
"""

from __future__ import annotations

import os
import secrets as random_secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, clean_env

NEMOTRON = str(Path(sys.executable).with_name("nemotron"))
ENV_TOML = '[p]\nexecutor = "local"\nsecrets = ["DB_PASS"]\n'


@pytest.fixture
def values() -> dict[str, str]:
    """Fresh values for one declared secret (DB_PASS) and one named like a secret (HF_TOKEN)."""
    return {"DB_PASS": f"db{random_secrets.token_hex(10)}", "HF_TOKEN": f"hf_{random_secrets.token_hex(10)}"}


def run(tmp_path: Path, values: dict[str, str], *argv: str) -> subprocess.CompletedProcess:
    env_file = tmp_path / "env.toml"
    env_file.write_text(ENV_TOML)
    env = clean_env(NEMOTRON_STATE_DIR=str(tmp_path / "state"), NEMOTRON_ENV_FILE=str(env_file), **values)
    return subprocess.run([NEMOTRON, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def hits(tmp_path: Path, p: subprocess.CompletedProcess, values: dict[str, str]) -> list[str]:
    """Where any secret value appears: the process output, or a file under the state folder."""
    found = [f"{where}: {name}" for where, text in (("stdout", p.stdout), ("stderr", p.stderr))
             for name, value in values.items() if value in text]
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {name}" for name, value in values.items() if value.encode() in data]
    return found


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in p.stdout + p.stderr, p.stderr[-3000:]
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-3000:]
    return lines[0]


PRETRAIN = ("nano3", "pretrain", "-c", "tiny", "--run", "p")


def test_a_declared_secret_read_by_a_config_is_written_as_a_reference(tmp_path, values):
    """A real run: job.yaml/train.yaml keep `${oc.env:DB_PASS}` (0600, in a 0700 job dir); the job resolves it."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    p = run(tmp_path, values, *PRETRAIN, f"data_path={empty}", "+train.db=${oc.env:DB_PASS}",
            "+train.hf=${oc.decode:${oc.env:HF_TOKEN}}")
    assert p.returncode != 0  # the trainer refuses the unknown keys: the point is what was written
    assert hits(tmp_path, p, values) == []
    [job_dir] = (tmp_path / "state" / "jobs" / "nano3-pretrain").iterdir()
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700
    for name in ("job.yaml", "train.yaml"):
        path = job_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        text = path.read_text()
        assert "db: ${oc.env:DB_PASS}" in text and "hf: ${oc.decode:${oc.env:HF_TOKEN}}" in text, text
    # The job's view: OmegaConf resolves the references from the job's environment.
    check = ("import sys; from omegaconf import OmegaConf; "
             "c = OmegaConf.to_container(OmegaConf.load(sys.argv[1]), resolve=True)['train']; "
             "print(c['db'] == sys.argv[2] and c['hf'] == sys.argv[3])")
    job_view = subprocess.run([sys.executable, "-c", check, str(job_dir / "train.yaml"), values["DB_PASS"],
                               values["HF_TOKEN"]], env={**os.environ, **values}, capture_output=True, text=True)
    assert job_view.stdout.strip() == "True", job_view.stderr


@pytest.mark.parametrize("override", [
    "+train.db=${oc.env:DB_PASS}",
    "+train.db=${oc.decode:${oc.env:DB_PASS}}",
    "+train.url=postgres://u:${oc.env:DB_PASS}@db:5432/x",
    "+train.tok=${oc.env:HF_TOKEN,fallback}",
    "+train.nested={a: [x, '${oc.env:HF_TOKEN}']}",
])
def test_dry_run_shows_references_not_values(tmp_path, values, override):
    p = run(tmp_path, values, *PRETRAIN, "--dry-run", "data_path=/tmp", override)
    assert p.returncode == 0, p.stderr[-3000:]
    assert hits(tmp_path, p, values) == []
    assert "${oc.env:" in p.stdout


def test_a_config_file_reading_a_secret_through_another_key(tmp_path, values):
    config = tmp_path / "mine.yaml"
    tiny = (REPO / "recipes/nano3/stage0_pretrain/config/tiny.yaml").read_text()
    config.write_text(tiny + "\nsecrets_holder:\n  db: ${oc.env:DB_PASS}\nplain_copy: ${secrets_holder.db}\n")
    p = run(tmp_path, values, "nano3", "pretrain", "-c", str(config), "--run", "p", "--dry-run", "data_path=/tmp")
    assert p.returncode == 0, p.stderr[-3000:]
    assert hits(tmp_path, p, values) == []
    assert "${secrets_holder.db}" in p.stdout  # kept as written: the job resolves it


@pytest.mark.parametrize("override,key,kind", [
    ("+train.api_key=12345678901", "train.api_key", "int"),
    ("+train.api_key=1.5e10", "train.api_key", "float"),
    ("+train.api_key=[s3cr3t-one, s3cr3t-two]", "train.api_key.0", "text"),
    ("+train.credentials={user: me, pw: s3cr3t-pw}", "train.credentials.user", "text"),
    ("+train.password=s3cr3t-literal", "train.password", "text"),
])
def test_secret_named_keys_refuse_literals_of_any_type(tmp_path, values, override, key, kind):
    p = run(tmp_path, values, *PRETRAIN, "--dry-run", "data_path=/tmp", override)
    assert p.returncode == 2
    line = one_error_line(p)
    assert f"config key '{key}' is named like a secret and holds a literal value ({kind})" in line
    assert "${oc.env:VAR}" in line
    literal = override.split("=", 1)[1]
    assert all(part not in line for part in ("12345678901", "s3cr3t")), line
    assert literal not in p.stdout
    assert not (tmp_path / "state" / "jobs").exists()


def test_a_literal_equal_to_a_secret_value_is_refused(tmp_path, values):
    p = run(tmp_path, values, *PRETRAIN, "--dry-run", "data_path=/tmp", f"+train.note={values['DB_PASS']}")
    assert p.returncode == 2
    line = one_error_line(p)
    assert "config key 'train.note' holds the value of the secret $DB_PASS" in line
    assert hits(tmp_path, p, values) == []


def test_a_secret_cannot_feed_the_toolkit_resolvers(tmp_path, values):
    p = run(tmp_path, values, *PRETRAIN, "--dry-run", "data_path=${art:${oc.env:HF_TOKEN},path}")
    assert p.returncode == 2
    assert "config key 'data_path'" in one_error_line(p)
    assert hits(tmp_path, p, values) == []


@pytest.mark.parametrize("argv", [
    ("artifacts", "show", "{HF_TOKEN}"),
    ("artifacts", "show", "{DB_PASS}:v3"),
    ("nano3", "pretrain", "-c", "tiny", "--run", "p", "--dry-run", "data_path=/tmp", "+train.api_key=[{HF_TOKEN}"),
    ("nano3", "pretrain", "-c", "tiny", "--run", "p", "--dry-run", "{DB_PASS}=1"),
])
def test_errors_never_echo_a_secret(tmp_path, values, argv):
    p = run(tmp_path, values, *(a.format(**values) for a in argv))
    assert p.returncode == 2
    one_error_line(p)
    assert hits(tmp_path, p, values) == []
