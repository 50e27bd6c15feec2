"""The Prefect UI shows a nano3-full run, its task runs and its artifacts: checked in headless Chromium.

The flow runs one real stage (the tiny pretrain data prep, seconds) against a real Prefect server, as a
worker would run it; then deployments/ui_screenshot.py opens the flow-run page, screenshots it and the
Artifacts tab, and the test asserts that every artifact the API lists for the run is on the page (the
stage's progress artifact among them). The same run's progress artifact and watcher rows are checked
through the API too (no browser needed).
Chromium comes from `scripts/chromium ensure` (apt-get on a fresh machine, as CI is).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.state import remove_state_folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chromium() -> str:
    out = subprocess.run([str(REPO / "scripts/chromium"), "ensure"], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(out.stderr.strip())
        pytest.skip(out.stderr.strip())
    return out.stdout.strip()


@pytest.fixture(scope="module")
def data_prep_run(prefect_server):
    """One real nano3-full run of the tiny pretrain data prep: (flow run, its task runs, its artifacts, UI URL)."""
    state = REPO / ".state" / f"ui{os.getpid()}"  # short: the data prep's Ray sockets live under it
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "NEMOTRON_STATE_DIR": str(state),
           "PREFECT_HOME": str(state / "prefect"), "NEMOTRON_ENV_FILE": ""}
    env.pop("RAY_ADDRESS", None)
    code = ("from flows.nano3_full import nano3_full\n"
            "state = nano3_full(stages=['data_pretrain'], return_state=True)\n"
            "print('FLOW_RUN', state.state_details.flow_run_id)\n")
    try:
        run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        from nemotron_cli.progress import settled_task_runs
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

        ui = prefect_server.removesuffix("/api")
        with temporary_settings({PREFECT_API_URL: prefect_server, PREFECT_UI_URL: ui}), \
                get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(run.stdout.split("FLOW_RUN ")[1].split()[0])
            task_runs = settled_task_runs(client, flow_run)
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
            yield flow_run, task_runs, artifacts, ui
    finally:
        remove_state_folder(state)


def test_progress_artifact_and_watcher_rows(data_prep_run):
    """The stage's progress artifact ends at 100 % naming its job and shards; the watcher (the rows of
    scripts/quickstart and `nano3 pipe`) reads the same from the API, one plain line per change."""
    import io

    from nemotron_cli.progress import Watcher
    from tasks.progress import parse

    flow_run, task_runs, artifacts, _ = data_prep_run
    progress = [a for a in artifacts if a.type == "progress"]
    assert [a.key for a in progress] == ["data-pretrain-progress"]
    assert progress[0].data == 100.0 and progress[0].task_run_id == task_runs[0].id
    fields = parse(progress[0].description)
    done, _, total = fields["shards"].partition("/")
    assert done == total and int(total) > 0, fields
    assert fields["job"].startswith("local ") and fields["job"].split()[1].isdigit(), fields

    out = io.StringIO()
    assert Watcher(out, live=False).follow(flow_run.id).state.is_completed()
    lines = out.getvalue().splitlines()
    assert f"flow run {flow_run.name}: completed" in lines[0]
    row = next(line for line in lines if " data_pretrain " in line)
    assert " completed " in row and f"job {fields['job']}" in row and f"shards {total}/{total}" in row


def test_flow_run_page_shows_the_run_its_tasks_and_every_artifact(data_prep_run, chromium, tmp_path):
    flow_run, task_runs, artifacts, ui = data_prep_run
    keys = {a.key for a in artifacts if a.key}
    assert flow_run.state.is_completed()
    assert any(k.endswith("-summary") for k in keys), keys  # the stage's report table at least
    assert "data-pretrain-progress" in keys, keys  # and its progress artifact

    from deployments.ui_screenshot import check_flow_run

    seen = check_flow_run(str(flow_run.id), flow_run.name, sorted(keys), tmp_path / "ui", ui=ui)
    assert seen.state_shown == "Completed"
    assert sorted(seen.artifacts_shown) == sorted(keys), "artifacts missing from the UI"
    for png in (seen.flow_run_page, seen.artifacts_page):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert task_runs and all(t.state.is_completed() for t in task_runs)
