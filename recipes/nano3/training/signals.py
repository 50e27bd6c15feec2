"""Preemption: SIGTERM (Slurm preemption / time limit, `scancel`, Ctrl-C via the CLI) or SIGUSR1
(Slurm `--signal=USR1@N` before the time limit) asks the trainer to stop.

The handler only sets a flag; the loop checks it between optimizer steps (all ranks
agree through the step's collective), saves a checkpoint and raises `Preempted`. The
script then writes output_dir/PREEMPTED.json and exits with RESUME_EXIT_CODE (75):
"run me again with resume: auto". Under torchrun the agent's own exit code is 1 whatever
its workers return, so callers that launch through torchrun should read PREEMPTED.json
(it names the step and checkpoint) to tell a preemption from a failure.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from nemotron_core.contract import PREEMPTED_FILE, RESUME_EXIT_CODE

from recipes.nano3.common.outputs import write_bytes

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """A stop signal arrived; a checkpoint for `step` was saved at `checkpoint`."""

    def __init__(self, signum: int, step: int, checkpoint: Path):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {checkpoint}; "
                         f"run again with resume: auto to continue (exit {RESUME_EXIT_CODE})")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    def write_marker(self, output_dir: Path) -> None:
        write_bytes(output_dir / PREEMPTED_FILE, (json.dumps({
            "exit_code": RESUME_EXIT_CODE, "signal": signal.Signals(self.signum).name, "step": self.step,
            "checkpoint": str(self.checkpoint)}, sort_keys=True) + "\n").encode())


class StopFlag:
    """Records the first stop signal; `restore()` puts the previous handlers back."""

    def __init__(self, signals=SIGNALS):
        self.signum: int | None = None
        self._previous = {s: signal.signal(s, self._handle) for s in signals}

    def reinstall(self) -> None:
        """Point the signals at this flag again (a library may have replaced the handlers)."""
        for s in self._previous:
            signal.signal(s, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def restore(self) -> None:
        global _FLAG
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}
        if _FLAG is self:
            _FLAG = None


_FLAG: StopFlag | None = None


def install() -> StopFlag:
    """The process's stop flag (created on first use): a signal before the loop starts counts too."""
    global _FLAG
    if _FLAG is None:
        _FLAG = StopFlag()
    else:
        _FLAG.reinstall()
    return _FLAG
