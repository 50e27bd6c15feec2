"""The SSH-tunnel path (tunnel = "ssh") for real: this host's sshd (scripts/sshd) is the login node of the
local Slurm cluster, and only its sessions know where the cluster is (SLURM_CONF is unset here).

Code and configs are shipped over SSH into `remote_job_dir`, `sbatch` runs in an SSH session, states
are polled and logs read over the same connection, cancel and re-attach go through it too.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import typer

from nemotron_core.execution import JobState, submit
from nemotron_core.execution.backends.slurm import close_shells

from tests.execution.conftest import JOB_RECIPE, files_containing, slurm_profile
from tests.fixtures.sshd import SshServer
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slurm


@pytest.fixture
def login(ssh_login_node: SshServer, slurm_cluster, state, monkeypatch) -> SshServer:
    monkeypatch.delenv("SLURM_CONF", raising=False)  # only the SSH sessions know the cluster
    close_shells()
    yield ssh_login_node
    close_shells()  # this test's connections go with it


@pytest.fixture
def remote(tmp_path) -> Path:
    """The cluster's filesystem side: job dirs land here (same host, another folder)."""
    return tmp_path / "cluster-jobs"


def ssh_profile(login: SshServer, **keys) -> str:
    return slurm_profile("ssh", **login.profile(**keys))


class ArgvWatch:
    """Every command line (/proc/*/cmdline) on this machine while it runs, scanned for a needle."""

    def __init__(self, needle: str):
        self.needle, self.hits, self.scans = needle.encode(), [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _scan(self) -> None:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if self.needle in argv:
                    self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace"))
        self.scans += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._scan()

    def __enter__(self) -> "ArgvWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)


def test_a_job_is_shipped_submitted_on_the_login_node_and_followed_over_ssh(login, stage, remote):
    s = stage(JOB_RECIPE, ssh_profile(login, remote_job_dir=str(remote)), "ssh", "sleep=1",
              "check_env=SSH_CONNECTION", "exit_code=3")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    lines: list[str] = []
    status = job.wait(on_log=lines.append, timeout=120)
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert "secret SSH_CONNECTION present=True" in lines  # sbatch ran in an SSH session
    assert "task 0 slept 1 s" in lines
    host_dir = remote / s.job_dir.parent.name / s.job_dir.name
    assert (host_dir / "code" / JOB_RECIPE).is_file() and (host_dir / "train.yaml").is_file()
    assert (host_dir / "sbatch.sh").is_file() and not (s.job_dir / "code").exists()
    assert job.ref.cluster["tunnel"] == "ssh" and job.ref.cluster["port"] == login.port


def test_secrets_reach_the_cluster_0600_and_never_a_command_line(login, stage, remote, monkeypatch):
    token = "hf_TuNnElSeCrEt_4242"
    monkeypatch.setenv("HF_TOKEN", token)
    s = stage(JOB_RECIPE, ssh_profile(login, remote_job_dir=str(remote)), "ssh", "sleep=1", "check_env=HF_TOKEN")
    with ArgvWatch(token) as watch:
        job = submit(s.executor, s.plan, job_dir=s.job_dir)
        lines: list[str] = []
        status = job.wait(on_log=lines.append, timeout=120)
    assert status.ok, lines
    assert "secret HF_TOKEN present=True" in lines
    assert watch.scans > 10 and watch.hits == []  # no argv on this host (client, sshd sessions, job) held it
    host_dir = remote / s.job_dir.parent.name / s.job_dir.name
    assert (host_dir / "secrets.env").stat().st_mode & 0o777 == 0o600
    assert files_containing(token, remote, s.job_dir) == sorted([host_dir / "secrets.env", s.job_dir / "secrets.env"])


def test_cancel_reaches_the_job_through_the_tunnel(login, stage, remote, slurm_cluster):
    s = stage(JOB_RECIPE, ssh_profile(login, remote_job_dir=str(remote)), "ssh", "sleep=120")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    wait_for(lambda: job.status(max_age=0).state is JobState.RUNNING, 60, "the job running")
    assert job.cancel(timeout=30).state is JobState.CANCELLED
    assert job.id not in slurm_cluster.run("squeue", "-h", "-o", "%i").stdout.split()


def test_a_rerun_reattaches_to_the_job_over_a_new_connection(login, stage, remote):
    first = stage(JOB_RECIPE, ssh_profile(login, remote_job_dir=str(remote)), "ssh", "sleep=5")
    job = submit(first.executor, first.plan, job_dir=first.job_dir, content_key="ssh-reattach-key")
    wait_for(lambda: job.status(max_age=0).state is JobState.RUNNING, 60, "the job running")
    close_shells()  # what a new process starts with: no connection, no poller
    again = stage(JOB_RECIPE, ssh_profile(login, remote_job_dir=str(remote)), "ssh", "sleep=5")
    attached = submit(again.executor, again.plan, job_dir=again.job_dir, content_key="ssh-reattach-key")
    assert attached.id == job.id and attached.job_dir == job.job_dir
    lines: list[str] = []
    assert attached.wait(on_log=lines.append, timeout=120).ok
    assert "task 0 slept 5 s" in lines


# ---------------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def job_cli(tmp_path, state, monkeypatch):
    """A one-command CLI wired like nano3's around the job test recipe, in a folder with env.toml."""
    from nemotron_cli.recipe_typer import RecipeTyper
    from pipeline.stages import Stage

    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")  # env.toml lookup stops here
    meta = Stage("test/job", JOB_RECIPE)
    cli = RecipeTyper(name="t")

    @cli.recipe(meta, name="job", panel="Test", help="The execution test job.")
    def job(ctx: typer.Context) -> None:
        from nemotron_cli.context import split_dotlist
        from nemotron_cli.recipe_run import run_recipe

        raise typer.Exit(run_recipe(meta, ctx.obj, split_dotlist(ctx.args)))

    @cli.command("noop")
    def noop() -> None:
        pass

    return cli


def test_the_cli_runs_through_the_tunnel_and_streams_the_logs(login, job_cli, tmp_path, remote, capsys):
    from nemotron_cli.app import main

    (tmp_path / "env.toml").write_text(ssh_profile(login, remote_job_dir=str(remote)))
    assert main(["job", "--run", "ssh", "exit_code=3", "sleep=1", "check_env=SSH_CONNECTION"], cli=job_cli) == 3
    captured = capsys.readouterr()
    assert "submitted slurm job" in captured.out and "task 0 slept 1 s" in captured.out
    assert "secret SSH_CONNECTION present=True" in captured.out
    assert "FAILED (exit code 3)" in captured.err


def test_a_profile_without_remote_job_dir_uses_the_login_nodes_home(login, job_cli, tmp_path, capsys):
    """The Nemotron guide's profile (host, user, identity; no remote_job_dir): jobs go to ~/.nemotron/jobs there."""
    from nemotron_cli.app import main
    from tests.fixtures.sshd import login_home

    (tmp_path / "env.toml").write_text(ssh_profile(login))
    assert main(["job", "--run", "ssh", "sleep=1"], cli=job_cli) == 0
    out = capsys.readouterr().out
    assert "task 0 slept 1 s" in out
    jobs = login_home(login.state) / ".nemotron" / "jobs" / "test-job"
    (local,) = sorted((tmp_path / "state" / "jobs" / "test-job").iterdir())
    assert (jobs / local.name / "train.yaml").is_file() and (jobs / local.name / "code" / JOB_RECIPE).is_file()


# ---------------------------------------------------------------------------------------------- failures


def _cli_error(job_cli, tmp_path, capsys, profile_toml: str) -> str:
    from nemotron_cli.app import main

    (tmp_path / "env.toml").write_text(profile_toml)
    assert main(["job", "--run", "bad", "sleep=1"], cli=job_cli) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: profile 'bad': cannot connect to "), err
    return err[0]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_one_line(login, job_cli, tmp_path, capsys):
    port = _free_port()
    line = _cli_error(job_cli, tmp_path, capsys, slurm_profile("bad", **login.profile(port=port)))
    assert f"root@127.0.0.1:{port}: connection refused" in line


def test_a_key_the_login_node_does_not_know_is_one_line(login, job_cli, tmp_path, capsys):
    import subprocess

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    line = _cli_error(job_cli, tmp_path, capsys, slurm_profile("bad", **login.profile(identity=str(other))))
    assert f"authentication failed for user root with identity {other}" in line


def test_an_unknown_host_key_is_refused_in_one_line(login, job_cli, tmp_path, capsys):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    line = _cli_error(job_cli, tmp_path, capsys, slurm_profile("bad", **login.profile(known_hosts=str(empty))))
    assert "host key unknown" in line and str(empty) in line
    assert empty.read_text() == ""  # nothing learnt


def test_a_changed_host_key_is_refused_in_one_line(login, job_cli, tmp_path, capsys):
    import subprocess

    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    forged = tmp_path / "known_hosts"
    forged.write_text(f"[127.0.0.1]:{login.port} {' '.join((other.with_suffix('.pub')).read_text().split()[:2])}\n")
    line = _cli_error(job_cli, tmp_path, capsys, slurm_profile("bad", **login.profile(known_hosts=str(forged))))
    assert "host key mismatch" in line


def test_a_server_that_never_answers_fails_after_connect_timeout(login, job_cli, tmp_path, capsys):
    import socket

    with socket.socket() as silent:  # accepts TCP connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        line = _cli_error(job_cli, tmp_path, capsys,
                          slurm_profile("bad", **login.profile(port=port, connect_timeout=2)))
    assert "no SSH answer within 2 s (connect_timeout)" in line


# ---------------------------------------------------------------------------------------------- a dropped tunnel


@pytest.fixture
def own_login_node(tmp_path, slurm_cluster, login):
    """A login node of this test only (it is stopped and started again): scripts/sshd in a private state."""
    import subprocess

    from tests.fixtures.services import SCRIPTS, _parse_exports
    from tests.fixtures.sshd import server_from_env

    state, port = tmp_path / "sshd-state", _free_port()
    home = tmp_path / "login-home"
    home.mkdir()
    env = {**os.environ, "NEMOTRON_STATE_DIR": str(state), "NEMOTRON_SSHD_PORT": str(port)}

    def sshd(*args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([str(SCRIPTS / "sshd"), *args], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out

    started = sshd("start", "--setenv", f"SLURM_CONF={slurm_cluster.conf}", "--setenv", f"HOME={home}")
    server = server_from_env(_parse_exports(started.stdout), state)
    server.env["control"] = sshd  # type: ignore[assignment]
    yield server
    close_shells()
    sshd("stop")


def test_a_tunnel_that_drops_mid_job_reconnects_and_the_job_is_not_lost(own_login_node, stage, remote):
    from nemotron_core.errors import NemotronError

    control = own_login_node.env["control"]
    s = stage(JOB_RECIPE, slurm_profile("ssh", **own_login_node.profile(remote_job_dir=str(remote))), "ssh",
              "sleep=8")
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    lines: list[str] = []
    wait_for(lambda: job.status(max_age=0).state is JobState.RUNNING, 60, "the job running")
    control("stop")  # the login node goes away, and every connection with it
    with pytest.raises(NemotronError) as lost:
        job.status(max_age=0)
    assert "\n" not in str(lost.value) and f"127.0.0.1:{own_login_node.port}" in str(lost.value)
    assert "connection refused" in str(lost.value)
    control("start")
    status = job.wait(on_log=lines.append, timeout=120)  # the next poll reconnects
    assert status.ok, lines
    assert [line for line in lines if "slept" in line] == [f"task 0 slept {i} s" for i in range(1, 9)]
