"""A team's Prefect server: PostgreSQL behind it, basic auth in front of it.

`prefect_server_postgres` is `scripts/prefect-server start --db postgres --auth` (which starts
`scripts/postgres`) in its own state folder. A flow runs against it and lands in PostgreSQL;
the database password and the auth string stay in 0600 files, off every command line.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.team.helpers import PREFECT, REPO, deploy_hello, flow_run_states, prefect, run_deployment, team_env, unique


def _secret_lines(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _cmdlines() -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return out


def _psql(postgres_service, sql: str) -> str:
    env = {**os.environ, **_secret_lines(postgres_service.env_file)}
    proc = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(postgres_service.port), "-tAc", sql], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_scripts_postgres_keeps_its_secrets_in_0600_files(postgres_service, prefect_server_postgres):
    status = subprocess.run([str(REPO / "scripts" / "postgres"), "status"], capture_output=True, text=True,
                            env={**os.environ, "NEMOTRON_STATE_DIR": str(postgres_service.state)}, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"127.0.0.1:{postgres_service.port}" in status.stdout
    secrets = _secret_lines(postgres_service.env_file)
    assert secrets["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://prefect:")
    assert f"@127.0.0.1:{postgres_service.port}/prefect" in secrets["PREFECT_API_DATABASE_CONNECTION_URL"]
    auth_file = prefect_server_postgres.state / "services" / "prefect-server" / "options"
    auth_path = Path(_secret_lines(auth_file)["auth_file"])
    for path in (postgres_service.env_file, auth_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    password, auth = secrets["PGPASSWORD"], prefect_server_postgres.auth_string.split(":", 1)[1]
    assert len(password) >= 24 and len(auth) >= 24
    leaked = [line for line in _cmdlines() if password in line or auth in line]
    assert not leaked
    # postgres listens on loopback only, over TCP (no unix socket)
    assert _psql(postgres_service, "SHOW listen_addresses") == "127.0.0.1"
    assert _psql(postgres_service, "SHOW unix_socket_directories") == ""


def test_a_flow_run_against_the_postgres_server_is_stored_in_postgres(prefect_server_postgres, postgres_service,
                                                                      tmp_path):
    env = team_env(prefect_server_postgres.env, tmp_path / "home")
    pool = unique("pg")
    name = deploy_hello(env, tmp_path / "code", pool)
    run_id = run_deployment(env, name, x=21)
    worker = subprocess.run([PREFECT, "worker", "start", "--pool", pool,
                             "--run-once"], env={**env, "PREFECT_WORKER_PREFETCH_SECONDS": "1"},
                            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    assert flow_run_states(env, [run_id]) == {run_id: "COMPLETED"}
    # The same run, read from PostgreSQL's own tables: the server keeps its state there, not in SQLite.
    assert _psql(postgres_service, f"SELECT state_type FROM flow_run WHERE id = '{run_id}'") == "COMPLETED"
    home = prefect_server_postgres.state / "services" / "prefect-server" / "home"
    assert not list(home.glob("*.db"))


def test_unauthenticated_clients_are_refused(prefect_server_postgres, tmp_path):
    api = prefect_server_postgres.api_url
    with httpx.Client(trust_env=False, timeout=30) as http:
        assert http.get(f"{api}/health").status_code == 200  # probes stay open
        assert http.post(f"{api}/flow_runs/filter", json={}).status_code == 401
        assert http.post(f"{api}/flow_runs/filter", json={}, auth=("nemotron", "wrong")).status_code == 401
        user, password = prefect_server_postgres.auth_string.split(":", 1)
        assert http.post(f"{api}/flow_runs/filter", json={}, auth=(user, password)).status_code == 200
    # the prefect CLI: refused without the auth string, works with it
    env = team_env(prefect_server_postgres.env, tmp_path / "home")
    anonymous = {k: v for k, v in env.items() if k != "PREFECT_API_AUTH_STRING"}
    refused = prefect(anonymous, "work-pool", "ls", check=False)
    assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr
    assert prefect(env, "work-pool", "ls").returncode == 0


def test_the_nemotron_cli_runs_a_flow_on_the_authenticated_server(prefect_server_postgres, tmp_path):
    """`nemotron nano3 pipe` with PREFECT_API_AUTH_STRING: the flow run is recorded on the team server."""
    state = tmp_path / "state"
    env = team_env(prefect_server_postgres.env, tmp_path / "home", NEMOTRON_STATE_DIR=str(state),
                   NEMOTRON_ENV_FILE="")
    env.pop("RAY_ADDRESS", None)
    nemotron = str(Path(sys.executable).with_name("nemotron"))
    proc = subprocess.run([nemotron, "nano3", "pipe", "--stages", "data_pretrain"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "nano3-pretrain-data:v1" in proc.stdout
    code = ("from prefect.client.orchestration import get_client\n"
            "from prefect.client.schemas.filters import FlowFilter, FlowFilterName\n"
            "with get_client(sync_client=True) as c:\n"
            "    runs = c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=['nano3-full'])))\n"
            "    print(sorted({r.state.type.value for r in runs}))\n")
    listing = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert "COMPLETED" in listing.stdout
