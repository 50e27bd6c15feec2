"""Nothing runs that the user did not write as code (issue 18, sections 2 and 3).

Every hostile value goes into one profile field (or an env name, a passthrough arg, the
state folder), through the real CLI: `--dry-run` (the printed script) and `--batch` (the
script written and handed to sbatch). `sbatch`, `srun` and `scontrol` are stubs first on
PATH that do what Slurm would do with the script: bash runs its body, srun records its
options, argv and environment (and runs the command where it can). An injection would
create the marker file. Then: `bash -n` accepts the script, the values arrive intact
(job environment, srun options, `#SBATCH` lines as sbatch parses them), and a value with
a newline or a bad env name is refused in one line naming the key.

The real-Slurm test at the end submits one job with hostile env values on the local
test cluster and reads the job's own environment.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_cli.app import main

from tests.execution.conftest import JOB_RECIPE, SLURM_BASE, slurm_profile
from tests.reliability.fuzzing_hostile import job_app

SBATCH_STUB = """#!/bin/bash
# stub sbatch: records its own environment, then runs the script's body the way a job would
env -0 > "$STUB_OUT/sbatch.env"
if [ -n "$STUB_SBATCH_FAIL" ]; then echo "sbatch: error: Batch job submission failed: stub" >&2; exit 1; fi
script="${@: -1}"
export SLURM_JOB_ID=4242 SLURM_JOB_NODELIST=localhost SLURM_NODEID=0 SLURM_RESTART_COUNT=0
bash "$script" > "$STUB_OUT/job.out" 2>&1
echo "$?" > "$STUB_OUT/job.rc"
echo 4242
"""

SRUN_STUB = """#!{python}
# stub srun: parses options, records them with the command and the environment, runs the command
import json, os, sys
VALUE = {{"--output", "--error", "--chdir", "--container-image", "--container-mounts", "--container-workdir",
          "--container-env", "-w", "-o", "-N", "-n"}}
args, opts, i = sys.argv[1:], {{}}, 0
while i < len(args) and args[i].startswith("-"):
    if args[i] in VALUE:
        opts[args[i]] = args[i + 1]
        i += 2
    else:
        key, _, value = args[i].partition("=")
        opts[key] = value
        i += 1
cmd = args[i:]
if cmd[:1] == ["hostname"]:
    print("127.0.0.1")
    sys.exit(0)
with open(os.path.join(os.environ["STUB_OUT"], "srun.json"), "w") as fh:
    json.dump({{"opts": opts, "cmd": cmd, "env": dict(os.environ)}}, fh)
if "--container-image" not in opts and os.path.isdir(opts.get("--chdir", "/nonexistent")):
    os.chdir(opts["--chdir"])
    os.execvp(cmd[0], cmd)
"""

SCONTROL_STUB = """#!/bin/bash
if [ "$1 $2" = "show hostnames" ]; then echo localhost; fi
exit 0
"""


def marker_value(kind: str, marker: Path) -> str:
    m = shlex.quote(str(marker))
    return {
        "semicolon": f"v; touch {m}",
        "subst": f"$(touch {m})",
        "backtick": f"`touch {m}`",
        "quotes": f"a'b\"c; touch {m} '\"",
        "space": "two words here",
        "hash": f"x # y; touch {m}",
        "dollar": "${HOME} $PATH",
        "newline": f"x\ntouch {m}",
        "tab": "x\ttab",
    }[kind]


KINDS = ["semicolon", "subst", "backtick", "quotes", "space", "hash", "dollar", "newline", "tab"]
REFUSED = {"newline", "tab"}  # control characters: refused in one line
SBATCH_FIELDS = ["partition", "account", "time", "qos", "constraint", "mem", "gres"]


@pytest.fixture
def stubs(tmp_path, monkeypatch) -> Path:
    bin_dir, out = tmp_path / "stub-bin", tmp_path / "stub-out"
    bin_dir.mkdir()
    out.mkdir()
    for name, text in {"sbatch": SBATCH_STUB, "srun": SRUN_STUB.format(python=sys.executable),
                       "scontrol": SCONTROL_STUB}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("STUB_OUT", str(out))
    monkeypatch.delenv("SLURM_CONF", raising=False)
    return out


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """A one-command CLI wired like nano3's around the job test recipe, run in a folder with env.toml."""
    from nemotron_core.secrets import is_secret_name

    for name in list(os.environ):
        if is_secret_name(name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "pyproject.toml").write_text("")
    app = job_app()

    def run(env_toml: str, *words: str, state: Path | None = None) -> int:
        (work / "env.toml").write_text(env_toml)
        state = state or tmp_path / "state"
        state.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("NEMOTRON_STATE_DIR", str(state))
        return main(["job", *words], cli=app)

    return run


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string (escapes included)


def profile_text(*, env: dict[str, str] | None = None, **keys) -> str:
    table = {**SLURM_BASE, **keys}
    lines = ["[p]"] + [f"{k} = {toml_str(v) if isinstance(v, str) else json.dumps(v)}" for k, v in table.items()]
    if env:
        lines += ["[p.env]"] + [f"{toml_str(k)} = {toml_str(v)}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


def dry_run_script(capsys) -> str:
    out = capsys.readouterr().out
    return out[out.index("#!/bin/bash"):]


def run_script(text: str, stub_out: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """What sbatch would start: bash on the script, with the job's Slurm variables."""
    script = tmp_path / "dry-run.sh"
    script.write_text(text)
    env = {**os.environ, "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost", "SLURM_NODEID": "0"}
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=120,
                          cwd=tmp_path)


def bash_n(text: str) -> None:
    p = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def sbatch_value(text: str, key: str) -> str | None:
    """The value sbatch reads for `--key` (it strips shell-style quotes from #SBATCH lines)."""
    for line in text.splitlines():
        if line.startswith(f"#SBATCH --{key}="):
            words = shlex.split(line[len("#SBATCH "):])
            assert len(words) == 1, line
            return words[0].split("=", 1)[1]
    return None


def srun_record(stub_out: Path) -> dict:
    return json.loads((stub_out / "srun.json").read_text())


def assert_refused(code: int, capsys, key: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("error:") and key in err, err


# --------------------------------------------------------------------------- the table


def cases():
    for kind in KINDS:
        yield pytest.param("env", kind, id=f"env-value-{kind}")
        for field in SBATCH_FIELDS:
            yield pytest.param(field, kind, id=f"{field}-{kind}")
        yield pytest.param("container_image", kind, id=f"container_image-{kind}")
        yield pytest.param("mounts", kind, id=f"mounts-{kind}")
        yield pytest.param("passthrough", kind, id=f"passthrough-{kind}")


@pytest.mark.parametrize("field,kind", list(cases()))
def test_hostile_value_in_a_profile_field_is_data(field, kind, cli, stubs, tmp_path, capsys):
    marker = tmp_path / "INJECTED"
    value = marker_value(kind, marker)
    keys: dict = {}
    env: dict[str, str] = {}
    words: list[str] = []
    if field == "env":
        env = {"HOSTILE": value}
    elif field == "mounts":
        value = "/host " + value.replace(",", "") + ":/in container"
        keys = {"container_image": "img:1", "mounts": [value]}
    elif field == "container_image":
        keys = {"container_image": value}
    elif field == "passthrough":
        words = ["--", "--x", value]
    else:
        keys = {field: value}
    toml = profile_text(env=env, **keys)
    refused = kind in REFUSED

    code = cli(toml, "--run", "p", "--dry-run", "sleep=0", *words)
    if refused:
        assert_refused(code, capsys, {"env": "HOSTILE", "passthrough": "command argument"}.get(field, field))
        assert not marker.exists()
        return
    assert code == 0, capsys.readouterr().err
    text = dry_run_script(capsys)
    bash_n(text)
    run_script(text, stubs, tmp_path)
    assert not marker.exists(), f"{field}={value!r} ran as code (dry-run script)"
    check_intact(field, value, text, srun_record(stubs), words)

    (stubs / "srun.json").unlink()
    code = cli(toml, "--batch", "p", "sleep=0", *words)
    assert code == 0, capsys.readouterr().err
    assert not marker.exists(), f"{field}={value!r} ran as code (--batch)"
    written = next((tmp_path / "state" / "jobs" / "test-job").glob("*/sbatch.sh")).read_text()
    bash_n(written)
    check_intact(field, value, written, srun_record(stubs), words)
    if field not in ("container_image", "mounts"):  # the stub ran the job itself: its environment
        assert (stubs / "job.rc").read_text().strip() == "0", (stubs / "job.out").read_text()[-3000:]


def check_intact(field: str, value: str, text: str, srun: dict, words: list[str]) -> None:
    if field == "env":
        assert srun["env"]["HOSTILE"] == value
    elif field == "passthrough":
        assert srun["cmd"][-2:] == ["--x", value], srun["cmd"]
    elif field == "container_image":
        assert srun["opts"]["--container-image"] == value
    elif field == "mounts":
        assert srun["opts"]["--container-mounts"].split(",")[1] == value  # after the job dir's mount
    else:
        assert sbatch_value(text, field.replace("_", "-")) == value


# --------------------------------------------------------------------------- names, paths


@pytest.mark.parametrize("name", ["A=1;touch {m};B", "$(touch {m})", "1ABC", "A B", "A-B", "A\nB", ""])
def test_env_names_must_be_names(name, cli, stubs, tmp_path, capsys):
    marker = tmp_path / "INJECTED"
    name = name.format(m=shlex.quote(str(marker)))
    code = cli(profile_text(env={name: "v"}), "--run", "p", "--dry-run", "sleep=0")
    assert_refused(code, capsys, "env")
    assert not marker.exists()


def test_env_names_keep_their_case(cli, stubs, tmp_path, capsys):
    assert cli(profile_text(env={"http_proxy": "http://proxy:3128", "Mixed_Case": "x y"}), "--batch", "p",
               "sleep=0") == 0
    env = srun_record(stubs)["env"]
    assert env["http_proxy"] == "http://proxy:3128" and env["Mixed_Case"] == "x y"
    assert "HTTP_PROXY" not in env and "MIXED_CASE" not in env


def test_a_state_folder_with_a_space_and_shell_characters_works(cli, stubs, tmp_path, capsys):
    marker = tmp_path / "INJECTED"
    state = tmp_path / f"state $(touch {marker}) 'x' dir"
    assert cli(profile_text(env={"FOO": "a b"}), "--batch", "p", "sleep=0", state=state) == 0, \
        capsys.readouterr().err
    assert not marker.exists()
    job_dir = next((state / "jobs" / "test-job").iterdir())
    rec = srun_record(stubs)
    assert rec["opts"]["--chdir"] == f"{job_dir}/code"
    assert rec["env"]["NEMOTRON_STATE_DIR"] == str(state) and rec["env"]["NEMORUN_HOME"] == f"{state}/nemo_run"
    assert (stubs / "job.rc").read_text().strip() == "0", (stubs / "job.out").read_text()[-3000:]
    assert "task 0 of" in (stubs / "job.out").read_text()  # the recipe ran, from its config in the job dir


# --------------------------------------------------------------------------- secrets at submit time


def test_sbatch_does_not_inherit_declared_secrets_and_startup_lines_are_not_traced(cli, stubs, tmp_path, capsys,
                                                                                   monkeypatch):
    monkeypatch.setenv("DB_PASS", "db-value-never-in-sbatch-env")
    monkeypatch.setenv("HF_TOKEN", "hf_value_never_traced_0123")
    toml = profile_text(secrets=["DB_PASS"], startup_commands=[': "$HF_TOKEN" "$DB_PASS"'])
    assert cli(toml, "--batch", "p", "sleep=0") == 0, capsys.readouterr().err
    sbatch_env = dict(kv.split("=", 1) for kv in (stubs / "sbatch.env").read_text().split("\0") if "=" in kv)
    assert "DB_PASS" not in sbatch_env and "HF_TOKEN" not in sbatch_env
    job_out = (stubs / "job.out").read_text()
    assert (stubs / "job.rc").read_text().strip() == "0", job_out[-3000:]
    assert "hf_value_never_traced_0123" not in job_out and "db-value-never-in-sbatch-env" not in job_out
    job_env = srun_record(stubs)["env"]  # they reach the job, through secrets.env
    assert job_env["DB_PASS"] == "db-value-never-in-sbatch-env" and job_env["HF_TOKEN"] == "hf_value_never_traced_0123"


def test_a_failed_submit_leaves_no_secrets_file(cli, stubs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_value_of_a_failed_submit")
    monkeypatch.setenv("STUB_SBATCH_FAIL", "1")
    code = cli(profile_text(), "--batch", "p", "sleep=0")
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "sbatch" in err, err
    jobs = tmp_path / "state" / "jobs"
    assert not list(jobs.rglob("secrets.env")), list(jobs.rglob("*"))
    hits = [p for p in jobs.rglob("*") if p.is_file() and b"hf_value_of_a_failed_submit" in p.read_bytes()]
    assert hits == []


def test_secrets_file_is_private(cli, stubs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_value_private_file")
    assert cli(profile_text(), "--batch", "p", "sleep=0") == 0
    (secrets,) = (tmp_path / "state" / "jobs").rglob("secrets.env")
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- real Slurm


@pytest.mark.slurm
def test_hostile_env_values_reach_a_real_slurm_job_intact(slurm_cluster, tmp_path, monkeypatch):
    from nemotron_core.execution import submit
    from nemotron_core.execution.states import JobState

    from tests.execution.conftest import REPO

    marker = tmp_path / "INJECTED"
    m = shlex.quote(str(marker))
    values = {"SEMI": f"v; touch {m}", "SUBST": f"$(touch {m})", "TICK": f"`touch {m}`",
              "QUOTES": "a'b\"c", "SPACE": "two  words", "HASH": "x # y", "lower_case": "kept"}
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    state = tmp_path / "state with space"
    state.mkdir()
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(state))
    out = tmp_path / "out"
    env_toml = tmp_path / "env.toml"
    env_toml.write_text(slurm_profile("s", startup_commands=[f"env -0 > {shlex.quote(str(out))}.env"])
                        + "[s.env]\n" + "".join(f"{k} = {toml_str(v)}\n" for k, v in values.items()))
    from nemotron_core.config import build_job_config, extract_train_config, generate_job_dir, parse_config, \
        save_configs
    from nemotron_core.execution import create_executor
    from nemotron_core.launch import plan_job
    from nemotron_core.profiles import load_env
    from nemotron_core.runspec import parse

    spec = parse(REPO / JOB_RECIPE)
    prof = load_env(env_toml).profile("s")
    train = parse_config(spec.config_dir, None, [], default=spec.config.default)
    job = build_job_config(train, spec=spec, mode="batch", profile=prof)
    job_dir = generate_job_dir(spec.name)
    plan = plan_job(spec, prof, job_dir / "train.yaml", passthrough=["--x", f"$(touch {m})"])
    executor = create_executor(prof, spec, attached=False, job_config=job)
    save_configs(job, extract_train_config(job), job_dir)
    status = submit(executor, plan, job_dir=job_dir).wait(timeout=180)
    logs = "".join(p.read_text() for p in job_dir.glob("*.out"))
    assert status.state is JobState.COMPLETED, f"{status}\n{logs[-3000:]}"
    assert not marker.exists()
    job_env = dict(kv.split("=", 1) for kv in Path(f"{out}.env").read_text().split("\0") if "=" in kv)
    for k, v in values.items():
        assert job_env.get(k) == v, k
    assert "LOWER_CASE" not in job_env
    assert f"extra=['--x', '$(touch {m})']" in logs


# --------------------------------------------------------------------------- local launch.sh


def test_a_local_jobs_launch_script_takes_no_code_from_env_names_or_values(cli, tmp_path, capsys):
    from tests.fixtures.waiting import wait_for

    marker = tmp_path / "INJECTED"
    m = shlex.quote(str(marker))
    bad_name = f'[loc]\nexecutor = "local"\n[loc.env]\n{toml_str(f"A=1;touch {m};B")} = "v"\n'
    assert_refused(cli(bad_name, "--batch", "loc", "sleep=0"), capsys, "env")
    values = {"SEMI": f"v; touch {m}", "SUBST": f"$(touch {m})", "TICK": f"`touch {m}`", "QUOTES": "a'b\"c",
              "lower_case": "kept"}
    dump = tmp_path / "job env"
    toml = (f'[loc]\nexecutor = "local"\nstartup_commands = [{toml_str(f"env -0 > {shlex.quote(str(dump))}")}]\n'
            "[loc.env]\n" + "".join(f"{k} = {toml_str(v)}\n" for k, v in values.items()))
    assert cli(toml, "--batch", "loc", "sleep=0", "--", "--x", f"$(touch {m})") == 0, capsys.readouterr().err
    (job_dir,) = (tmp_path / "state" / "jobs" / "test-job").iterdir()
    wait_for(lambda: (job_dir / "exit_code").is_file(), 60, "the local job's end")
    job_env = dict(kv.split("=", 1) for kv in dump.read_text().split("\0") if "=" in kv)
    assert {k: job_env.get(k) for k in values} == values and "LOWER_CASE" not in job_env
    assert f"extra=['--x', '$(touch {m})']" in (job_dir / "job.log").read_text()
    assert not marker.exists()
    assert subprocess.run(["bash", "-n", str(job_dir / "launch.sh")]).returncode == 0


# --------------------------------------------------------------------------- nemo-run's Ray container template


def nemotron_dry_run(tmp_path: Path, profile: str, *words: str, state: Path) -> subprocess.CompletedProcess:
    from tests.reliability.conftest import clean_env

    env_file = tmp_path / "env.toml"
    env_file.write_text(profile)
    env = clean_env(NEMOTRON_ENV_FILE=str(env_file), NEMOTRON_STATE_DIR=str(state), COLUMNS="400")
    return subprocess.run([str(Path(sys.executable).with_name("nemotron")), "nano3", *words, "--run", "ray",
                           "--dry-run"], capture_output=True, text=True, env=env, timeout=300)


RAY_PROFILE = """[ray]
executor = "slurm"
partition = "batch"
nodes = 2
container_image = "nvcr.io/nvidia/nemo:25.11"
"""


def test_the_ray_container_template_gets_quoted_exports_and_the_command_in_a_variable(tmp_path):
    marker = tmp_path / "INJECTED"
    m = shlex.quote(str(marker))
    hostile = {"SUBST": f"$(touch {m})", "SEMI": f"v; touch {m}", "lower_case": "a b"}
    profile = RAY_PROFILE + "[ray.env]\n" + "".join(f"{k} = {toml_str(v)}\n" for k, v in hostile.items())
    p = nemotron_dry_run(tmp_path, profile, "data", "prep", "pretrain", state=tmp_path / "state")
    assert p.returncode == 0, p.stderr[-3000:]
    script = p.stdout[p.stdout.index("#!/bin/bash"):]
    bash_n(script)
    for k, v in hostile.items():
        assert f"export {k}={shlex.quote(v)}\n" in script
    assert "LOWER_CASE" not in script
    (line,) = [ln for ln in script.splitlines() if ln.startswith("NEMOTRON_COMMAND=")]
    (command,) = shlex.split(line.split("=", 1)[1])  # one quoted word, evaluated once by `bash -c` on the head
    assert "data_prep.py --config /nemo_run/train.yaml" in command
    assert 'COMMAND="${COMMAND:-$NEMOTRON_COMMAND}"' in script
    assert not marker.exists()


def test_the_ray_container_template_refuses_a_state_folder_it_cannot_quote(tmp_path):
    p = nemotron_dry_run(tmp_path, RAY_PROFILE, "data", "prep", "pretrain", state=tmp_path / "state dir")
    err = p.stderr.strip()
    assert p.returncode != 0 and len(err.splitlines()) == 1 and err.startswith("error:") and "job dir" in err, err
