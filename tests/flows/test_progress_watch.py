"""The watcher of nemotron_cli/progress.py against a real Prefect server: the final per-task list waits
for task runs Prefect records after the flow run ended, and Ctrl-C cancels or detaches as asked.

Flow and task runs are written through the API as a worker's flow process writes them (no flow runs
here: seconds). The watcher over a real nano3-full run (rows, progress artifact) is checked in
tests/deployments/test_ui.py, which runs one anyway.
"""

from __future__ import annotations

import io
import threading
from uuid import uuid4

import pytest


@pytest.fixture
def client(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as c:
        yield c


def _flow_run(client, state, **parameters):
    from prefect import flow

    @flow(name="nano3-full-watch-probe")
    def probe(stages: list[str] | None = None) -> None:
        pass

    return client.create_flow_run(probe, parameters=parameters, state=state)


def _task_run(client, flow_run_id, name: str) -> None:
    from prefect import task
    from prefect.states import Completed

    @task(name=name)
    def stage() -> None:
        pass

    client.create_task_run(stage, flow_run_id, dynamic_key=name, name=f"{name}-tiny", state=Completed())


def test_final_list_waits_for_task_runs_recorded_after_the_flow_run(client):
    """The first quickstart on a fresh state printed an empty list: the flow run was Completed before the
    server had recorded its task runs (Prefect records their states from events, later)."""
    from prefect.states import Completed

    from nemotron_cli.progress import settled_task_runs

    run = _flow_run(client, Completed(), stages=["data_pretrain", "data_sft"])
    assert settled_task_runs(client, run, timeout=0) == []  # what the old list read: nothing yet
    late = threading.Timer(1.0, lambda: [_task_run(client, run.id, n) for n in ("data-pretrain", "data-sft")])
    late.start()
    try:
        runs = settled_task_runs(client, run, timeout=60)
    finally:
        late.join()
    assert sorted(t.name for t in runs) == ["data-pretrain-tiny", "data-sft-tiny"]
    assert all(t.state.is_completed() for t in runs)


def test_ctrl_c_off_a_terminal_stops_watching_and_leaves_the_run_alone(client):
    from prefect.states import Running

    from nemotron_cli.progress import ask_on_interrupt

    run = _flow_run(client, Running())
    out = io.StringIO()
    assert ask_on_interrupt(run, out=out, interactive=False) == "detach"
    assert f"stopped watching; flow run {run.name} goes on (cancel it: prefect flow-run cancel {run.id})" \
        in out.getvalue()
    assert client.read_flow_run(run.id).state.is_running()


def test_ctrl_c_on_a_terminal_cancels_the_run_when_asked(client, monkeypatch):
    from prefect.client.schemas.objects import StateType
    from prefect.states import Running

    from nemotron_cli.progress import ask_on_interrupt

    run = _flow_run(client, Running())
    monkeypatch.setattr("sys.stdin", io.StringIO("c\n"))  # what the user types at the prompt
    out = io.StringIO()
    assert ask_on_interrupt(run, out=out, interactive=True) == "cancel"
    assert f"cancelling flow run {run.name}" in out.getvalue()
    assert client.read_flow_run(run.id).state.type in (StateType.CANCELLING, StateType.CANCELLED)

    other = _flow_run(client, Running())
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # Enter / end of input: the default, watch no more
    assert ask_on_interrupt(other, out=io.StringIO(), interactive=True) == "detach"
    assert client.read_flow_run(other.id).state.is_running()


@pytest.mark.slow
def test_quickstart_on_a_fresh_state_shows_progress_and_lists_every_task_run():
    """scripts/quickstart as a new user runs it (fresh state folder: a new server, worker and deployments),
    two stages to keep it short, output not a terminal: one line per change with shards / rows done/total,
    then the per-task list with every task run (on a fresh state it came out empty)."""
    import os
    import socket
    import subprocess

    from tests.fixtures.state import remove_state_folder
    from tests.flows.helpers import REPO

    state = REPO / ".state" / f"qs{os.getpid()}"  # short: Ray's sockets live under it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RAY_ADDRESS"))}
    env.update(NEMOTRON_STATE_DIR=str(state), NEMOTRON_PREFECT_PORT=str(port), NEMOTRON_ENV_FILE="")
    try:
        run = subprocess.run([str(REPO / "scripts/quickstart"), "--stages", "data_pretrain,data_rl"], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=1500)
        out = run.stdout
        assert run.returncode == 0, out[-4000:] + run.stderr[-4000:]
        lines = out.splitlines()
        shards = [x for x in lines if " data_pretrain " in x and " shards " in x]
        assert shards and any(" completed " in x for x in shards), out
        assert any(" data_rl " in x and " rows " in x for x in lines), out  # the RL data prep counts rows
        assert any(x.startswith("(watch it from another shell: nemotron nano3 watch ") for x in lines), out
        listed = [x.split() for x in lines if x.startswith("  ") and x.split()[0].endswith("-tiny")]
        assert sorted(listed) == [["data-pretrain-tiny", "Completed"], ["data-rl-tiny", "Completed"]], out
        assert "nano3-full/local: Completed" in lines
    finally:
        subprocess.run([str(REPO / "scripts/quickstart"), "stop"], cwd=REPO, env=env, capture_output=True,
                       timeout=120)
        remove_state_folder(state)


# ---- `nemotron nano3 watch`: what `pipe --batch` tells the user to run --------------------------------
def _nano3_run(client, state, stages):
    from prefect import flow

    @flow(name="nano3-full")  # the flow `nano3 watch` follows (pipe --batch submits runs of it)
    def nano3_full(stages: list[str] | None = None) -> None:
        pass

    return client.create_flow_run(nano3_full, parameters={"stages": stages}, state=state)


def _stage_run(client, flow_run_id, name: str, state, progress: str | None = None):
    from prefect import task
    from prefect.client.schemas.actions import ArtifactCreate

    @task(name=name)
    def stage() -> None:
        pass

    run = client.create_task_run(stage, flow_run_id, dynamic_key=str(uuid4()), name=f"{name}-tiny", state=state)
    if progress is not None:  # what tasks/progress.py's ProgressArtifact writes while the job runs
        client.create_artifact(ArtifactCreate(type="progress", data=20.0, description=progress,
                                              flow_run_id=flow_run_id, task_run_id=run.id))
    return run


def _watch(prefect_server, *words):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PREFECT_API_URL": prefect_server, "COLUMNS": "200"}
    return subprocess.Popen([str(Path(sys.executable).with_name("nemotron")), "nano3", "watch", *words], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read_until(proc, needle: str) -> list[str]:
    """stdout lines up to the first that holds `needle` (bounded by the test's own timeout)."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} never shown; stdout: {''.join(lines)}; stderr: {proc.stderr.read()[-2000:]}")


def test_watch_follows_a_submitted_run_to_its_end(client, prefect_server):
    """`nemotron nano3 watch ID` off a terminal: one line per stage with the RL data prep's rows and the eval's
    tasks and questions, then, once the run ends, the task list and the run's state (exit 0)."""
    from prefect.states import Completed, Pending, Running

    run = _nano3_run(client, Running(), ["data_rl", "eval"])
    _stage_run(client, run.id, "data-rl", Completed(), "job local 3 · rows 1650/1650")
    _stage_run(client, run.id, "eval", Completed(), "model nano3-pretrain-model:v1 · job local 4 · tasks 5/5")
    sft = _stage_run(client, run.id, "eval", Running(),
                     "model nano3-sft-model:v1 · job local 5 · tasks 1/5 · now heldout_qa 64/212")
    rl = _stage_run(client, run.id, "eval", Pending())
    proc = _watch(prefect_server, str(run.id))
    try:
        shown = "".join(_read_until(proc, "heldout_qa 64/212"))
        assert f"flow run {run.name} ({run.id})" in shown and f"flow run {run.name}: running" in shown
        assert "data_rl " in shown and "job local 3" in shown and "rows 1650/1650" in shown
        assert "eval (sft) " in shown and "job local 5" in shown and "tasks 1/5 heldout_qa 64/212" in shown
        for task_run in (sft, rl):
            client.set_task_run_state(task_run.id, Completed(), force=True)
        client.set_flow_run_state(run.id, Completed(), force=True)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    listed = [x.split() for x in out.splitlines() if x.startswith("  ") and x.split()[0].endswith("-tiny")]
    assert sorted(listed) == [["data-rl-tiny", "Completed"]] + [["eval-tiny", "Completed"]] * 3, out
    assert f"flow run {run.name}: Completed" in out.splitlines()


def test_watch_by_name_exits_1_on_a_failed_run_and_refuses_others_in_one_line(client, prefect_server):
    from prefect.states import Failed

    failed = _nano3_run(client, Failed(), ["data_rl"])
    _stage_run(client, failed.id, "data-rl", Failed())
    proc = _watch(prefect_server, failed.name)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert f"flow run {failed.name}: Failed" in out.splitlines() and "  data-rl-tiny" in out
    proc = _watch(prefect_server)  # no FLOW_RUN: the newest nano3-full run
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and out.startswith(f"flow run {failed.name} ({failed.id})"), out + err

    probe = _flow_run(client, Failed())  # a run of another flow: its rows are not nano3's stages
    for which, needle in ((str(uuid4()), "no flow run"), ("no-such-run-name", "no flow run"),
                          (str(probe.id), "is a run of 'nano3-full-watch-probe', not nano3-full")):
        proc = _watch(prefect_server, which)
        out, err = proc.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
        assert "Traceback" not in out + err
