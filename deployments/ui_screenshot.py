"""Look at a flow run the way a user does: the Prefect UI in headless Chromium, with screenshots.

    python deployments/ui_screenshot.py FLOW_RUN_ID [--out DIR]

Opens the flow-run page (PREFECT_UI_URL, else PREFECT_API_URL minus /api), waits until it shows the
run's name and final state and has painted the run graph, saves `flow-run.png`, opens the Artifacts tab,
saves `artifacts.png`, and prints one line per artifact key the page shows. Exit 1 when the page never
rendered the run. DIR defaults to <state>/ui/<flow run id>.

Chromium is Debian's (`scripts/chromium ensure`); its profile lives under the state folder and it may
only reach 127.0.0.1 (the v2 UI asks an analytics host for its config even with analytics off).
The v1 UI renders task-run artifact cards only once scrolled into view: hence the tall viewport.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class UiCheck:
    flow_run_page: Path
    artifacts_page: Path
    state_shown: str
    artifacts_shown: list[str]  # of the keys asked for, those the Artifacts tab showed


def ui_url() -> str:
    url = os.environ.get("PREFECT_UI_URL") or os.environ.get("PREFECT_API_URL", "").removesuffix("/api")
    if not url:
        raise SystemExit("ui_screenshot: set PREFECT_UI_URL or PREFECT_API_URL (eval \"$(scripts/prefect-server env)\")")
    return url.rstrip("/")


def check_flow_run(flow_run_id: str, flow_run_name: str, artifact_keys: list[str], out: Path,
                   ui: str | None = None, timeout_s: float = 60) -> UiCheck:
    """Render the run page and its Artifacts tab, looking for `artifact_keys` there.

    Raises playwright's TimeoutError when the page never shows the run.
    """
    from playwright.sync_api import TimeoutError as PageTimeout
    from playwright.sync_api import sync_playwright

    from nemotron_core.paths import state_dir

    out.mkdir(parents=True, exist_ok=True)
    profile = state_dir() / "cache" / "chromium-profile"
    ms = timeout_s * 1000
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                   args=ARGS, viewport={"width": 1400, "height": 900})
        try:
            ctx.route(re.compile(r"^(?!http://127\.0\.0\.1[:/])(?!data:)"), lambda route: route.abort())
            page = ctx.new_page()
            page.goto(f"{ui or ui_url()}/runs/flow-run/{flow_run_id}", wait_until="domcontentloaded", timeout=ms)
            page.get_by_text(flow_run_name).first.wait_for(timeout=ms)
            state = page.locator("text=/^(Completed|Failed|Crashed|Cancelled|Cached)$/").first
            state.wait_for(timeout=ms)
            page.locator("canvas").first.wait_for(state="visible", timeout=ms)
            page.wait_for_timeout(1500)  # the run graph is painted lazily after the canvas appears
            flow_png = out / "flow-run.png"
            page.screenshot(path=str(flow_png))
            page.locator("li.p-tab", has_text="Artifacts").click(timeout=ms)
            # Cards below the fold load only when scrolled into view, and the page scrolls inside an inner
            # container (full_page=True shows just the viewport): use a tall viewport instead.
            page.set_viewport_size({"width": 1400, "height": 2400})
            shown, wait_ms = [], ms
            for key in artifact_keys:  # the cards load after the tab: wait for each (long for the first)
                try:
                    page.wait_for_function("k => document.body.innerText.split(/\\s+/).includes(k)", arg=key,
                                           timeout=wait_ms)
                    shown.append(key)
                except PageTimeout:
                    pass
                wait_ms = 5000
            page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=ms)
            (out / "artifacts.txt").write_text(page.locator("body").inner_text())
            height = page.evaluate("() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
            page.set_viewport_size({"width": 1400, "height": min(max(900, int(height)), 8000)})
            page.wait_for_timeout(300)
            artifacts_png = out / "artifacts.png"
            page.screenshot(path=str(artifacts_png))
            return UiCheck(flow_png, artifacts_png, state.inner_text(), shown)
        finally:
            ctx.close()


def main(argv: list[str]) -> int:
    import argparse

    from playwright.sync_api import TimeoutError as PageTimeout
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from nemotron_core.paths import state_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("flow_run_id")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(args.flow_run_id)
        mine = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        keys = sorted({a.key for a in client.read_artifacts(artifact_filter=mine) if a.key})
    out = args.out or state_dir() / "ui" / str(run.id)
    try:
        seen = check_flow_run(str(run.id), run.name, keys, out)
    except PageTimeout as err:
        print(f"ui_screenshot: the UI never rendered flow run {run.name}: {err}", file=sys.stderr)
        return 1
    print(f"state shown: {seen.state_shown}\nscreenshots: {seen.flow_run_page} {seen.artifacts_page}")
    for key in keys:
        print(f"  {'shown  ' if key in seen.artifacts_shown else 'MISSING'} {key}")
    return 0 if set(keys) <= set(seen.artifacts_shown) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
