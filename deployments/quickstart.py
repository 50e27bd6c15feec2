"""Run a deployment, wait for it, and print what a user wants to see (used by scripts/quickstart).

    python deployments/quickstart.py nano3-full/local [--screenshot] [--stages data_pretrain,pretrain]

Prints the flow run's UI URL (and the `nemotron nano3 watch ID` that follows it from another shell), then
shows the run as it goes (nemotron_cli/watch.py, nemotron_cli/progress.py: a live table on a terminal, one line
per change elsewhere), then each task run's state, the artifacts of the run and, when evals ran, the
comparison table. Ctrl-C asks whether to cancel the flow run or only stop watching (not
on a terminal: it stops watching, the run goes on) and exits 130. With --screenshot, also opens the run in the Prefect UI with headless
Chromium (deployments/ui_screenshot.py) and prints where the screenshots are. Exit code 0 only when the
flow run completed.
"""

from __future__ import annotations

import os
import sys


def main(name: str, screenshot: bool = False, stages: list[str] | None = None) -> int:
    from prefect.deployments import run_deployment

    from nemotron_cli.watch import follow_to_end, watch_command

    ui = os.environ.get("PREFECT_UI_URL", os.environ.get("PREFECT_API_URL", "").removesuffix("/api"))
    run = run_deployment(name, timeout=0, parameters={"stages": stages} if stages else None)
    print(f"flow run {run.name}: {ui}/runs/flow-run/{run.id}", flush=True)
    print(f"(watch it from another shell: {watch_command(str(run.id))})", flush=True)
    code = follow_to_end(run, title=name)  # `nemotron nano3 watch`'s view and final list
    if code == 130:
        return code
    _print_evals()
    if screenshot:
        from ui_screenshot import main as ui_screenshot  # a sibling: this script's folder is on sys.path

        ui_screenshot([str(run.id)])
    return code


def _print_evals() -> None:
    try:
        from recipes.nano3.evaluation.compare import print_comparison
    except ImportError:
        return
    from nemotron_core.artifacts import open_registry
    from nemotron_core.profiles import load_env

    print_comparison(open_registry(load_env().section("artifacts")))


def _args(argv: list[str]) -> tuple[str, bool, list[str] | None]:
    import argparse

    parser = argparse.ArgumentParser(prog="quickstart")
    parser.add_argument("deployment", nargs="?", default="nano3-full/local")
    parser.add_argument("--screenshot", action="store_true")
    parser.add_argument("--stages", help="comma-separated stages to run (default: all)")
    args = parser.parse_args(argv)
    if args.stages is None:
        return args.deployment, args.screenshot, None
    from pipeline.stages import check_stages

    return args.deployment, args.screenshot, check_stages([s.strip() for s in args.stages.split(",") if s.strip()])


if __name__ == "__main__":
    from nemotron_core.errors import NemotronError

    try:
        deployment, shot, stages = _args(sys.argv[1:])
    except NemotronError as e:
        sys.exit(f"quickstart: error: {e}")
    sys.exit(main(deployment, screenshot=shot, stages=stages))
