"""Run a deployment, wait for it, and print what a user wants to see (used by scripts/quickstart).

    python deployments/quickstart.py nano3-full/local [--screenshot]

Prints the flow run's UI URL, each task run's state, the artifacts of the run and, when
evals ran, the comparison table. With --screenshot, also opens the run in the Prefect UI with headless
Chromium (deployments/ui_screenshot.py) and prints where the screenshots are. Exit code 0 only when the
flow run completed.
"""

from __future__ import annotations

import os
import sys


def main(name: str, screenshot: bool = False) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.deployments import run_deployment

    ui = os.environ.get("PREFECT_UI_URL", os.environ.get("PREFECT_API_URL", "").removesuffix("/api"))
    run = run_deployment(name, timeout=0)
    print(f"flow run {run.name}: {ui}/runs/flow-run/{run.id}", flush=True)
    run = run_deployment_wait(run.id)
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    for t in sorted(tasks, key=lambda t: t.start_time or t.expected_start_time):
        print(f"  {t.name:28s} {t.state.name if t.state else '-'}")
    print(f"{name}: {run.state.name}")
    result = _result(run)
    for stage, ref in (result or {}).items():
        if isinstance(ref, str):
            print(f"  {stage:14s} {ref}")
    _print_evals()
    if screenshot:
        from ui_screenshot import main as ui_screenshot  # a sibling: this script's folder is on sys.path

        ui_screenshot([str(run.id)])
    return 0 if run.state.is_completed() else 1


def run_deployment_wait(flow_run_id, poll: float = 2.0):
    import time

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                return run
            time.sleep(poll)


def _result(run):
    try:
        return run.state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - results are best-effort for the printout
        return None


def _print_evals() -> None:
    try:
        from recipes.nano3.evaluation.compare import print_comparison
    except ImportError:
        return
    from nemotron_core.artifacts import open_registry
    from nemotron_core.profiles import load_env

    print_comparison(open_registry(load_env().section("artifacts")))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--screenshot"]
    sys.exit(main(args[0] if args else "nano3-full/local", screenshot="--screenshot" in sys.argv[1:]))
