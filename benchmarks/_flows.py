"""Flow processes for the orchestration benchmarks: the nano3-full flow and a no-op flow of the same shape.

Each runs in its own Python process against the Prefect server at $PREFECT_API_URL (start one
with `eval "$(scripts/prefect-server start >/dev/null; scripts/prefect-server env)"`), like a
worker runs a flow run. The process reports the flow call's wall time; the parent samples its
RSS (VmRSS every 50 ms, and VmHWM, the kernel's peak, at the end).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _reliability_data import REPO, bench_env

from nemotron_core.paths import state_dir

# The stages and short trainer runs of tests/flows/test_nano3_full.py: 5 tasks, the same chain.
STAGES = ["data_pretrain", "data_sft", "data_rl", "pretrain", "sft"]
FAST = {"pretrain": ["train.max_steps=40", "eval.interval=20", "checkpoint.interval=20", "log.interval=10"],
        "sft": ["train.max_steps=20", "eval.interval=10", "checkpoint.interval=10", "log.interval=10"]}
PIPELINE_STATE = state_dir() / "bench" / "pipeline"

_TIMED = ("import json, sys, time\n"
          "{setup}\n"
          "t = time.perf_counter()\n"
          "result = {call}\n"
          "print('FLOW_S=' + str(time.perf_counter() - t), flush=True)\n")
PIPELINE = _TIMED.format(setup="from flows.nano3_full import nano3_full", call="nano3_full(**json.loads(sys.argv[1]))")
# The same five tasks, submitted and chained as nano3_full submits them, each returning at once.
NOOP = _TIMED.format(setup=(
    "from prefect import flow, task\n"
    "@task\n"
    "def stage(name, **inputs):\n"
    "    return name + ':v1'\n"
    "@flow(name='noop-5')\n"
    "def noop():\n"
    "    dp = stage.submit('data_pretrain')\n"
    "    ds = stage.submit('data_sft', pretrain_data=dp)\n"
    "    dr = stage.submit('data_rl', pretrain_data=dp)\n"
    "    pt = stage.submit('pretrain', data=dp)\n"
    "    sf = stage.submit('sft', data=ds, base_model=pt)\n"
    "    return {f.result(): 1 for f in (dp, ds, dr, pt, sf)}\n"), call="noop()")


@dataclass
class FlowRun:
    flow_s: float  # the flow call, inside the process
    process_s: float  # the whole process (interpreter start, imports, flow, exit)
    peak_rss_mb: float  # VmHWM of the flow process (its children, the jobs, are not counted)
    samples: int


def env_for(state: Path) -> dict[str, str]:
    if not os.environ.get("PREFECT_API_URL"):
        sys.exit('PREFECT_API_URL is not set: eval "$(scripts/prefect-server start >/dev/null; '
                 'scripts/prefect-server env)" first')
    return {**bench_env(), "NEMOTRON_STATE_DIR": str(state), "PREFECT_HOME": str(state / "prefect"),
            "NEMOTRON_ENV_FILE": ""}


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(code: str, state: Path, params: dict | None = None) -> FlowRun:
    log = state / "bench-logs" / f"{time.time_ns()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(params or {})], cwd=REPO, env=env_for(state),
                                stdout=out, stderr=subprocess.STDOUT)
    peak, samples = [0], [0]

    def sample():  # VmHWM is read just before the process is reaped (a zombie has no status)
        while proc.poll() is None:
            peak[0] = max(peak[0], _status_kb(proc.pid, "VmHWM"), _status_kb(proc.pid, "VmRSS"))
            samples[0] += 1
            time.sleep(0.05)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    proc.wait()
    watcher.join()
    took = time.perf_counter() - start
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"flow process failed ({proc.returncode}), log {log}:\n{text[-3000:]}")
    flow_s = float(next(line for line in text.splitlines() if line.startswith("FLOW_S="))[len("FLOW_S="):])
    return FlowRun(flow_s, took, peak[0] / 1024, samples[0])
