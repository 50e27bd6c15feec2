"""Run a recipe script's main() under the project's script contract (nemotron_core.contract).

- a NemotronError -> `error: <msg>` on stderr (one line), exit 2 (do not retry);
- SIGTERM (preemption, time limit) -> exit 75: the shards finished so far are kept and
  the orchestrator reruns the job, which resumes (Ctrl-C: exit 130, same resume).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from nemotron_core.contract import RESUME_EXIT_CODE
from nemotron_core.errors import NemotronError


class Preempted(BaseException):
    """Raised in the main thread when the job gets SIGTERM."""


def _on_sigterm(signum, frame):
    raise Preempted()


def run_main(main: Callable[[list[str]], object], argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        main(sys.argv[1:] if argv is None else argv)
    except NemotronError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except Preempted:
        print("preempted (SIGTERM): finished shards are kept; rerun the same command to resume",
              file=sys.stderr, flush=True)
        _exit_now_if_ray_runs(RESUME_EXIT_CODE)
        return RESUME_EXIT_CODE
    except KeyboardInterrupt:
        print("interrupted: finished shards are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _exit_now_if_ray_runs(code: int) -> None:
    """Exit without Ray's teardown while its tasks are in flight.

    Ray 2.60's shutdown with task replies still arriving can abort the process ("Check failed: Tried to
    complete task that was not pending"), which turns exit 75 into SIGABRT and the retry into a failure.
    The shard markers are already on disk. A local head started by ray.init is this process's children
    (raylet, GCS, agents, workers): SIGKILL them, else its agents linger for a minute; connected to a
    cluster (RAY_ADDRESS) there are no such children and the cluster's processes are not ours to end.
    """
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
