"""Ray: one task per shard, at most `workers` at a time, resumable.

    stats = run_shards(build_shard, jobs, workers=8, marker_dir=out / "shards", shared=(tok_json,))

Each job is a JSON-able dict with a unique "name" and a "digest" of everything its
output depends on. The task runs `fn(job, *shared)`, which writes its files (temp
name, then rename) and returns JSON-able stats; then the task writes
`marker_dir/<name>.json` ({digest, stats}) last. A rerun skips every job whose marker
has the same digest, so shards finished before a kill are not recomputed (and a job
whose settings changed is). Ray is only started when some job is left to do.

Ray: connects to the cluster in RAY_ADDRESS when set (a RayJob on Slurm, `ray start
--head`); otherwise starts a local head with num_cpus=workers, no dashboard, and its
temp dir under the state folder (`nemotron_core.paths.ray_temp_dir()`: short, for unix sockets).

Shards done / total go to `marker_dir.parent/progress.json` (the output dir: common/progress.py)
as they finish, for whoever watches the job.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from nemotron_core.errors import NemotronError
from nemotron_core.paths import ray_temp_dir

from .outputs import write_json
from .progress import Progress, write_progress


def init_ray(workers: int, extra_pythonpath: str | None = None) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else Ray writes ~/.ray/auth_token
    import ray

    if ray.is_initialized():
        return
    runtime_env = {"env_vars": {"PYTHONPATH": extra_pythonpath}} if extra_pythonpath else None
    on_sigterm = signal.getsignal(signal.SIGTERM)
    common = dict(log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **common)
    else:
        temp = ray_temp_dir()
        ray.init(num_cpus=workers, include_dashboard=False, _temp_dir=str(temp), **common)
    if callable(on_sigterm):  # ray.init installs its own (C++) SIGTERM handler; keep the script's (exit 75)
        signal.signal(signal.SIGTERM, on_sigterm)


def shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _run_job(fn: Callable, job: dict, marker_dir: str, *shared) -> dict:
    # One tokenizer thread per task: `workers` tasks share the cores (no oversubscription).
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    cpu = time.process_time()
    stats = fn(job, *shared)
    write_json(Path(marker_dir) / f"{job['name']}.json", {"digest": job["digest"], "stats": stats})
    return {"stats": stats, "cpu_s": time.process_time() - cpu}  # CPU time stays out of the outputs


def done_stats(job: dict, marker_dir: Path) -> dict | None:
    """The stats of a finished job with the same digest, else None."""
    marker = marker_dir / f"{job['name']}.json"
    if not marker.is_file():
        return None
    data = json.loads(marker.read_text())
    return data["stats"] if data.get("digest") == job["digest"] else None


def run_shards(fn: Callable, jobs: list[dict], *, workers: int, marker_dir: Path, shared: tuple = (),
               resume: bool = True, extra_pythonpath: str | None = None, log=print,
               timing: dict | None = None) -> list[dict]:
    """Run fn over the jobs not done yet (all of them when resume is False); every job's stats, in order.

    `timing` (optional) gets init_s (Ray start), run_s (first submit to last result),
    task_cpu_s (CPU seconds the tasks used) and computed (names of the jobs run now).
    """
    timing = {} if timing is None else timing
    results = {j["name"]: done_stats(j, marker_dir) if resume else None for j in jobs}
    todo = [j for j in jobs if results[j["name"]] is None]
    timing.update(init_s=0.0, run_s=0.0, task_cpu_s=0.0, computed=[j["name"] for j in todo])
    if len(jobs) > len(todo):
        log(f"resume: {len(jobs) - len(todo)}/{len(jobs)} shards already done")
    write_progress(marker_dir.parent, Progress(done=len(jobs) - len(todo), of=len(jobs), unit="shards"))
    if not todo:
        return [results[j["name"]] for j in jobs]
    t0 = time.perf_counter()
    init_ray(workers, extra_pythonpath)
    import ray

    t1 = time.perf_counter()
    timing["init_s"] = t1 - t0

    remote = ray.remote(num_cpus=1, max_retries=0)(_run_job)
    refs_shared = [ray.put(x) for x in shared]
    fn_ref = ray.put(fn)
    pending: dict = {}
    queue = list(todo)
    try:
        while queue or pending:
            while queue and len(pending) < workers:
                job = queue.pop(0)
                pending[remote.remote(fn_ref, job, str(marker_dir), *refs_shared)] = job
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)  # wake up for signals
            if not ready:
                continue
            job = pending.pop(ready[0])
            try:
                done = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                if isinstance(e.cause, NemotronError):
                    raise e.cause from None
                raise
            results[job["name"]] = done["stats"]
            timing["task_cpu_s"] += done["cpu_s"]
            done_now = sum(v is not None for v in results.values())
            log(f"shard {job['name']} done ({done_now}/{len(jobs)})")
            write_progress(marker_dir.parent, Progress(done=done_now, of=len(jobs), unit="shards"))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    timing["run_s"] = time.perf_counter() - t1
    return [results[j["name"]] for j in jobs]
