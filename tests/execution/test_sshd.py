"""scripts/sshd: a private sshd on 127.0.0.1, the SSH tunnel's login node in tests and CI.

The shared server comes from tests/fixtures/sshd.py; the lifecycle test runs its own in a private
state folder (start, idempotent start, status, stop) so it can check every file it writes.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.services import SCRIPTS, _parse_exports
from tests.fixtures.sshd import SshServer, server_from_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sshd(state: Path, *args: str, port: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEMOTRON_STATE_DIR": str(state)}
    if port is not None:
        env["NEMOTRON_SSHD_PORT"] = str(port)
    return subprocess.run([str(SCRIPTS / "sshd"), *args], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=600)


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} writes them) listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                found.append(local.rsplit(":", 1)[0])
    return found


def _home_ssh() -> list[str]:
    home = Path(os.path.expanduser("~root" if os.geteuid() == 0 else "~")) / ".ssh"
    return sorted(str(p) for p in home.rglob("*")) if home.exists() else ["<none>"]


def test_the_client_key_logs_in_and_another_key_is_refused(sshd_server: SshServer, tmp_path):
    ok = sshd_server.ssh("echo", "logged-in-as", "$(id -un)")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["logged-in-as", sshd_server.user]

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    refused = sshd_server.ssh("true", identity=other)
    assert refused.returncode == 255
    assert "Permission denied (publickey)" in refused.stderr


def test_a_host_key_not_in_known_hosts_is_refused(sshd_server: SshServer, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused = sshd_server.ssh("true", known_hosts=empty)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr
    assert empty.read_text() == ""  # StrictHostKeyChecking=yes: nothing learnt


def test_lifecycle_in_a_private_state_folder(tmp_path):
    state, port = tmp_path / "state", _free_port()
    home_before = _home_ssh()
    started = _sshd(state, "start", "--setenv", "NEMOTRON_SSHD_PROBE=first", port=port)
    if started.returncode != 0 and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"scripts/sshd start failed: {started.stderr.strip().splitlines()[-1:]}")
    assert started.returncode == 0, started.stderr
    server = server_from_env(_parse_exports(started.stdout), state)
    d = state / "services" / "sshd"
    try:
        assert server.port == port and server.host == "127.0.0.1"
        assert _listeners(port) == ["0100007F"]  # 127.0.0.1 only, no IPv6, no 0.0.0.0
        for private in (server.identity, d / "authorized_keys", d / "etc" / "host_ed25519"):
            assert private.stat().st_mode & 0o777 == 0o600, private
        assert d.stat().st_mode & 0o777 == 0o700
        assert server.known_hosts.read_text().startswith(f"[127.0.0.1]:{port} ssh-ed25519 ")
        pid = (d / "sshd.pid").read_text().strip()

        session = server.ssh("echo", "$NEMOTRON_SSHD_PROBE")
        assert session.returncode == 0 and session.stdout.strip() == "first", session.stderr

        # start on a running server: same process, same env; --setenv changes the next logins
        again = _sshd(state, "start", "--setenv", "NEMOTRON_SSHD_PROBE=second", port=port)
        assert again.returncode == 0, again.stderr
        assert _parse_exports(again.stdout) == server.env
        assert (d / "sshd.pid").read_text().strip() == pid
        assert server.ssh("echo", "$NEMOTRON_SSHD_PROBE").stdout.strip() == "second"
        assert _sshd(state, "start", port=port).returncode == 0  # no --setenv: kept
        assert server.ssh("echo", "$NEMOTRON_SSHD_PROBE").stdout.strip() == "second"

        bad = _sshd(state, "start", "--setenv", "X=a b", port=port)
        assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
            "sshd: error: --setenv wants NAME=VALUE (a variable name; a value without spaces, quotes or "
            "backslashes), got 'X=a b'"]

        status = _sshd(state, "status")
        assert status.returncode == 0 and f"127.0.0.1:{port}" in status.stdout
    finally:
        stopped = _sshd(state, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert _sshd(state, "status").returncode == 3
    assert _sshd(state, "env").returncode == 3
    assert _listeners(port) == []
    assert _sshd(state, "stop").returncode == 0  # stopping a stopped server is fine
    assert _home_ssh() == home_before  # nothing in ~/.ssh: keys, known_hosts and config stay in the state folder


def test_the_login_node_reaches_the_local_slurm_cluster(ssh_login_node: SshServer):
    out = ssh_login_node.ssh("sinfo", "-h", "-o", "%T")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() and set(out.stdout.split()) <= {"idle", "mixed", "allocated"}
