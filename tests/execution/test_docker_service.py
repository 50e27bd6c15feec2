"""scripts/docker: a private daemon without bridge or iptables, and the local test image that runs the
project's Python from read-only mounts.

Fixture: tests/fixtures/docker.py (docker_daemon). The start/stop test runs a second daemon in the
test's own state folder, so it never stops the shared one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.docker import DockerDaemon, docker_client

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "docker"


def script(*args: str, state: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], env={**os.environ, "NEMOTRON_STATE_DIR": str(state), **env},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path under the session's state folder (containerd's socket lives there)."""
    path = Path(os.environ["NEMOTRON_STATE_DIR"]) / "tmp" / f"dx{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_container_imports_torch_and_the_project_from_read_only_mounts(docker_daemon: DockerDaemon) -> None:
    venv_python = str(REPO / ".venv" / "bin" / "python")
    code = ("import torch, nemotron_core, socket; "
            "print(torch.__version__, nemotron_core.__file__); "
            "print(sorted(n for _, n in socket.if_nameindex()))")
    proc = docker_daemon.docker("run", "--rm", "--network", "none", *docker_daemon.volume_args(),
                                docker_daemon.image, venv_python, "-c", code)
    assert proc.returncode == 0, proc.stderr
    version, module = proc.stdout.splitlines()[0].split()
    assert version.startswith("2.") and module == str(REPO / "nemotron_core" / "__init__.py")
    assert proc.stdout.splitlines()[1] == "['lo']"  # --network none: the container's own loopback only

    # The mounts are read-only: a job cannot change the code or the venv it runs from.
    probe = docker_daemon.docker("run", "--rm", "--network", "none", *docker_daemon.volume_args(),
                                 docker_daemon.image, "touch", str(REPO / "nemotron_core" / "probe"))
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    assert not (REPO / "nemotron_core" / "probe").exists()


def test_daemon_has_no_bridge_and_a_default_container_gets_loopback_only(docker_daemon: DockerDaemon) -> None:
    networks = docker_daemon.docker("network", "ls", "--format", "{{.Name}} {{.Driver}}")
    assert networks.returncode == 0, networks.stderr
    assert sorted(networks.stdout.split("\n")[:-1]) == ["host host", "none null"]
    assert not Path("/sys/class/net/docker0").exists()
    # No --network at all: no bridge to attach to, so only the container's loopback exists.
    proc = docker_daemon.docker("run", "--rm", docker_daemon.image, "cat", "/proc/net/dev")
    assert proc.returncode == 0, proc.stderr
    interfaces = [line.split(":")[0].strip() for line in proc.stdout.splitlines()[2:]]
    assert interfaces == ["lo"]


def test_env_status_and_a_second_start_reuse_the_running_daemon(docker_daemon: DockerDaemon) -> None:
    status = script("status", state=docker_daemon.state)
    assert status.returncode == 0 and status.stdout.startswith("docker: running (pid ")
    env = script("env", state=docker_daemon.state)
    assert env.returncode == 0 and env.stdout == f"export DOCKER_HOST={docker_daemon.host}\n"
    again = script("start", state=docker_daemon.state)
    assert again.returncode == 0 and again.stdout == env.stdout and "ready" not in again.stderr
    image = script("image", state=docker_daemon.state)  # up to date: same tag, nothing rebuilt
    assert image.returncode == 0 and f"NEMOTRON_DOCKER_IMAGE={docker_daemon.image}\n" in image.stdout
    assert "built" not in image.stderr


def test_a_state_folder_too_deep_for_containerds_socket_fails_in_one_line(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60)
    proc = script("start", state=deep)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("docker: error: exec root ")
    assert "set NEMOTRON_DOCKER_EXEC_ROOT" in proc.stderr
    assert not (deep / "services" / "docker" / "docker.pid").exists()


def test_stop_ends_the_daemon_its_containers_and_mounts(docker_daemon: DockerDaemon, tmp_path: Path,
                                                        short_dir: Path) -> None:
    state = tmp_path / "s"
    state.mkdir()
    exec_root = {"NEMOTRON_DOCKER_EXEC_ROOT": str(short_dir)}
    started = script("start", state=state, **exec_root)
    try:
        assert started.returncode == 0, started.stderr
        env = {**os.environ, "DOCKER_HOST": started.stdout.strip().split("=", 1)[1]}
        built = script("image", state=state)
        assert built.returncode == 0, built.stderr
        image = built.stdout.splitlines()[0].split("=", 1)[1]
        run = subprocess.run([docker_client(), "run", "-d", "--network", "none", image, "sleep", "600"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        ours = state / "services" / "docker"
        pid = int((ours / "docker.pid").read_text())
        # Pid files gone (a cleanup that ran too early): stop still finds the daemon by its arguments.
        (ours / "docker.pid").unlink()
        (ours / "launcher.pid").unlink()
    finally:
        stopped = script("stop", state=state, **exec_root)
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(f"/proc/{pid}").exists()
    for path in (str(ours), str(short_dir)):
        assert [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if path in line] == []
        leftovers = subprocess.run(["pgrep", "-f", path], capture_output=True, text=True)
        assert leftovers.stdout == ""
    assert script("status", state=state).returncode == 3
    not_running = script("env", state=state)
    assert not_running.returncode == 3 and not_running.stderr == "docker: error: not running (scripts/docker start)\n"
    assert script("stop", state=state, **exec_root).returncode == 0  # idempotent


@pytest.mark.parametrize("command", ["", "restart"])
def test_usage(command: str, tmp_path: Path) -> None:
    proc = script(*([command] if command else []), state=tmp_path)
    assert proc.returncode == 2 and proc.stderr == "usage: scripts/docker {start|stop|status|env|image}\n"
