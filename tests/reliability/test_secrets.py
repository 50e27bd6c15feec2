"""Secrets never land in what a run writes: a real stage run through the flow, then every byte searched.

The nano3-full flow runs the pretrain data prep (a real local job: Ray workers, tokenizer,
shards) against a real Prefect server, with WANDB_API_KEY, HF_TOKEN and MY_SECRET set to fresh
random values in the flow process's environment. Then each value is searched for in:
- every file under the run's state folder (job dirs, job.yaml/train.yaml, logs, Ray session
  logs, the artifact registry, Prefect's home, caches);
- every file of the Prefect server's own state folder (its SQLite database);
- the flow process's output;
- the Prefect records through the API: flows, flow runs (parameters), task runs, logs,
  artifacts, deployments, variables, events.
The one place allowed: the job's `secrets.env` (mode 0600), which delivers them to the job;
it is checked to exist, hold the values and be 0600, and is the only file excluded.
"""

from __future__ import annotations

import json
import os
import secrets as random_secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.state import remove_state_folder
from tests.reliability.conftest import REPO, clean_env

FLOW = ("import json, sys\n"
        "from flows.nano3_full import nano3_full\n"
        "print('RESULT=' + json.dumps(nano3_full(**json.loads(sys.argv[1]))), flush=True)\n")
ENDPOINTS = ["flows", "flow_runs", "task_runs", "logs", "artifacts", "deployments", "variables"]


def _hits(root: Path, values: list[bytes], allowed: set[Path]) -> list[str]:
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path in allowed or path.is_symlink() or not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {v[:4].decode()}..." for v in values if v in data]
    return found


def _server_state(api: str) -> Path:
    """The folder of the server the fixture gave us (scripts/prefect-server keeps its port there)."""
    from tests.fixtures.services import _candidate_states

    port = api.rsplit(":", 1)[1].split("/")[0]
    for state in _candidate_states():
        folder = state / "services" / "prefect-server"
        if (folder / "port").is_file() and (folder / "port").read_text().strip() == port:
            return folder
    raise AssertionError(f"no scripts/prefect-server state folder serves {api}")


def _prefect_records(api: str) -> str:
    """Every record of the endpoints above, as JSON text (paged)."""
    import httpx

    chunks = []
    with httpx.Client(base_url=api, timeout=60) as client:
        for endpoint in ENDPOINTS:
            offset = 0
            while True:
                r = client.post(f"/{endpoint}/filter", json={"limit": 200, "offset": offset})
                r.raise_for_status()
                page = r.json()
                chunks.append(json.dumps(page))
                if len(page) < 200:
                    break
                offset += 200
        r = client.post("/events/filter", json={"limit": 50})
        if r.status_code == 200:
            chunks.append(r.text)
    return "\n".join(chunks)


def test_secret_values_are_nowhere_but_the_0600_secrets_file(prefect_server, reliability_dir):
    state = REPO / ".state" / f"sec{os.getpid()}"  # short: Ray's socket paths live under it
    values = {name: f"{name.lower()}-{random_secrets.token_hex(16)}" for name in ("WANDB_API_KEY", "HF_TOKEN",
                                                                                 "MY_SECRET")}
    env = clean_env(PREFECT_API_URL=prefect_server, NEMOTRON_STATE_DIR=str(state), PREFECT_HOME=str(state / "prefect"),
                    NEMOTRON_ENV_FILE="", **values)
    try:
        params = {"stages": ["data_pretrain"], "overrides": {"data_pretrain": ["sources.synthetic.documents=2000"]}}
        p = subprocess.run([sys.executable, "-c", FLOW, json.dumps(params)], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=1200)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        assert "nano3-pretrain-data:v1" in p.stdout

        secret_files = list(state.rglob("secrets.env"))
        assert len(secret_files) == 1, secret_files  # one job, one delivery file
        text = secret_files[0].read_text()
        assert all(v in text for v in values.values())  # it did deliver them
        assert stat.S_IMODE(secret_files[0].stat().st_mode) == 0o600

        needles = [v.encode() for v in values.values()]
        hits = _hits(state, needles, allowed=set(secret_files))
        server_state = _server_state(prefect_server)
        assert any(server_state.rglob("*.db")), server_state  # its SQLite database is searched too
        hits += _hits(server_state, needles, allowed=set())
        hits += [f"flow output: {v[:4]}..." for v in values.values() if v in p.stdout + p.stderr]
        records = _prefect_records(prefect_server)
        assert '"parameters"' in records and "nano3-full" in records  # the run's records are in there
        hits += [f"prefect API: {v[:4]}..." for v in values.values() if v in records]
        assert hits == []
    finally:
        remove_state_folder(state)
