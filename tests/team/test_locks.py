"""The content-key lock lives in the shared artifact registry and knows when its holder is gone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from nemotron_core.profiles import load_env
from tasks.locks import LOCKS_SUBDIR, ProcessLockManager, lock_dir

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, artifacts: str):
    path = tmp_path / "env.toml"
    path.write_text(f"[artifacts]\n{artifacts}\n")
    return load_env(path)


def test_locks_live_in_the_registry_folder_every_worker_shares(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state-a"))
    monkeypatch.delenv("NEMOTRON_ARTIFACTS_ROOT", raising=False)
    shared = tmp_path / "shared"
    assert lock_dir(_env(tmp_path, f'root = "{shared}"')) == shared / LOCKS_SUBDIR
    assert lock_dir(_env(tmp_path, f'root = "file://{shared}"')) == shared / LOCKS_SUBDIR
    # not a folder (s3://): one machine's state folder
    assert lock_dir(_env(tmp_path, 'root = "s3://bucket/reg"')) == tmp_path / "state-a" / "prefect" / "locks"
    monkeypatch.setenv("NEMOTRON_ARTIFACTS_ROOT", str(shared))
    assert lock_dir(None) == shared / LOCKS_SUBDIR


def test_the_locks_folder_is_not_an_artifact(tmp_path):
    from nemotron_core.artifacts import open_registry

    registry = open_registry({"root": str(tmp_path)})
    locks = ProcessLockManager(tmp_path / LOCKS_SUBDIR)
    assert locks.acquire_lock("k" * 64, holder="me")
    assert registry.names() == []
    locks.release_lock("k" * 64, holder="me")


def _write_lock(folder: Path, key: str, **info) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.lock"
    path.write_text(json.dumps({"holder": "old", "expiration": None, **info}))
    return path


def test_a_lock_from_before_a_reboot_is_free_and_another_hosts_lock_is_trusted(tmp_path):
    import os

    from tasks.locks import _start_time

    me, start = os.getpid(), _start_time(os.getpid())
    # this very pid and start time, but recorded in another boot of this host
    _write_lock(tmp_path, "rebooted", host=socket.gethostname(), boot_id="another-boot", pid=me, start=start)
    # a holder on another host: its processes cannot be seen from here
    _write_lock(tmp_path, "remote", host="login-node-2", boot_id="x", pid=1, start="0")
    locks = ProcessLockManager(tmp_path)
    assert not locks.is_locked("rebooted") and not (tmp_path / "rebooted.lock").exists()
    assert locks.is_locked("remote")
    assert not locks.acquire_lock("remote", holder="me", acquire_timeout=0.5)


def test_two_processes_with_different_state_folders_exclude_each_other(tmp_path):
    """What two login nodes' workers do: the same key, each its own NEMOTRON_STATE_DIR, one registry."""
    shared = tmp_path / "shared"
    code = textwrap.dedent(f"""
        import sys, time
        from tasks.locks import ProcessLockManager, lock_dir
        locks = ProcessLockManager(lock_dir(None))
        assert locks.acquire_lock("stage-key", holder=sys.argv[1], acquire_timeout=120)
        with open({str(tmp_path / "trace")!r}, "a") as fh:
            fh.write(f"start {{sys.argv[1]}}\\n"); fh.flush(); time.sleep(1.0); fh.write(f"end {{sys.argv[1]}}\\n")
        locks.release_lock("stage-key", holder=sys.argv[1])
    """)
    import os

    procs = []
    for name in ("a", "b"):
        env = {**os.environ, "NEMOTRON_STATE_DIR": str(tmp_path / f"state-{name}"),
               "NEMOTRON_ARTIFACTS_ROOT": str(shared)}
        procs.append(subprocess.Popen([sys.executable, "-c", code, name], cwd=REPO, env=env))
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    trace = (tmp_path / "trace").read_text().split("\n")[:4]
    assert trace[0].split()[0] == "start" and trace[1] == f"end {trace[0].split()[1]}", trace  # never interleaved
    assert not (tmp_path / "state-a" / "prefect" / "locks").exists()
