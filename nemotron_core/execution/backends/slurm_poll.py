"""Slurm job state, one query per poll for every job this process watches (`SlurmPoller`).

1. `squeue --json --states=all --jobs=a,b,c` (lists finished jobs until MinJobAge;
   `exit_code` there is the raw wait status: exit = v >> 8, signal = v & 0x7f). Slurm
   22.05 ignores every filter (--jobs, --me, -u) when --json is given and lists all jobs,
   so ids are matched here; newer versions honour --jobs;
2. ids squeue no longer lists: `sacct -X` (accounting) or `sacct -c` (the jobcomp
   file when accounting is disabled) — the final state comes from there, because
   jobcomp's ExitCode reads 0:0 for CANCELLED/TIMEOUT/PREEMPTED;
3. older Slurm without `squeue --json`: `squeue -h -t all -o ...` with the same flow.
A job listed with another job's comment (an id Slurm reused) reads UNKNOWN.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any, Iterable

from nemotron_core.execution.backends.slurm_shell import SHELLS_LOCK, SlurmError, SlurmShell, forget_shells, shell_for
from nemotron_core.execution.backends.slurm_tags import parse_comment
from nemotron_core.execution.states import JobState, JobStatus, slurm_state

_FINAL_LIFETIME = 3600.0  # seconds a final status stays cached


def _raw_exit(value: Any) -> tuple[int | None, int | None]:
    """squeue --json exit_code: a raw wait status (22.05) or {"return_code":..,"signal":..} (23.02+)."""
    if isinstance(value, dict):
        rc = value.get("return_code")
        sig = (value.get("signal") or {}).get("id") if isinstance(value.get("signal"), dict) else value.get("signal")
        rc = rc.get("number") if isinstance(rc, dict) else rc
        return (int(rc) if rc is not None else None), (int(sig) if sig else None)
    if isinstance(value, int):
        return value >> 8, (value & 0x7F) or None
    return None, None


def _pair(text: str) -> tuple[int | None, int | None]:
    """'3:0' → (3, None); '0:15' → (0, 15)."""
    code, _, sig = str(text).partition(":")
    try:
        return int(code), (int(sig) or None) if sig else None
    except ValueError:
        return None, None


def expand_ranges(spec: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7] (Slurm's array index syntax, without a ':step')."""
    out: list[int] = []
    for part in filter(None, spec.split(",")):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def array_task_ids(array_id: str, spec: str) -> list[str]:
    """The ids `A_k` of the tasks of array job `array_id` submitted with `--array=spec`."""
    return [f"{array_id}_{k}" for k in expand_ranges(spec.split("%")[0])]


def _status(state: JobState, exit_code: int | None, signal: int | None, *, reason: str | None = None,
            restarts: int = 0, raw: str | None = None) -> JobStatus:
    if state is JobState.COMPLETED:
        exit_code, signal = 0, None
    reason = None if reason in (None, "", "None") else reason
    return JobStatus(state=state, exit_code=exit_code, signal=signal, reason=reason, restarts=restarts or 0,
                     raw=raw)


class SlurmPoller:
    """Batches state queries: one squeue call per refresh for every job this process watches."""

    def __init__(self, shell: SlurmShell):
        self.shell = shell
        self._lock = threading.Lock()
        self._watch: dict[str, str | None] = {}  # job id -> expected tag (from the comment)
        self._names: dict[str, str] = {}  # job id -> expected job name (jobcomp has no comment)
        self._cache: dict[str, tuple[float, JobStatus]] = {}
        self._json: bool | None = None  # squeue --json supported?
        self._sacct_args: list[str] | None = None
        self._raw: dict[str, str] = {}  # array task "A_k" -> its own job id (what sacct/jobcomp list)
        self.queries = 0  # squeue invocations (tests and benchmarks read it)

    def watch(self, job_id: str, tag: str | None = None, name: str | None = None) -> None:
        with self._lock:
            self._watch.setdefault(str(job_id), tag)
            if name:
                self._names[str(job_id)] = name

    def status(self, job_id: str, tag: str | None = None, *, name: str | None = None,
               max_age: float = 1.0) -> JobStatus:
        job_id = str(job_id)
        with self._lock:
            self._watch.setdefault(job_id, tag)
            if name:
                self._names.setdefault(job_id, name)
            hit = self._cache.get(job_id)
            now = time.monotonic()
            if hit and (now - hit[0] < max_age or (hit[1].done and now - hit[0] < _FINAL_LIFETIME)):
                return hit[1]
            self._refresh()
            return self._cache[job_id][1]

    def poll(self, job_ids: Iterable[str], *, max_age: float = 1.0) -> dict[str, JobStatus]:
        """The status of every id in `job_ids` (watched from now on) with at most one squeue call.

        Ids are plain job ids or array tasks `A_k` (see array_task_ids): what tracking many jobs
        from one process needs (tracking.py, benchmarks/many_jobs.py)."""
        ids = [str(i) for i in job_ids]
        with self._lock:
            for job_id in ids:
                self._watch.setdefault(job_id, None)
            now = time.monotonic()
            stale = [i for i in ids if i not in self._cache or (
                now - self._cache[i][0] >= max_age and not self._cache[i][1].done)]
            if stale:
                self._refresh()
            return {i: self._cache[i][1] for i in ids}

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._watch.pop(str(job_id), None)
            self._cache.pop(str(job_id), None)

    def _refresh(self) -> None:
        now = time.monotonic()
        ids = [i for i in self._watch if not (i in self._cache and self._cache[i][1].done)]
        found = self._squeue(ids) if ids else {}
        missing = [i for i in ids if i not in found]
        if missing:
            raw = {self._raw.get(i, i): i for i in missing}
            found.update({raw[k]: v for k, v in self._final_states(list(raw)).items() if k in raw})
        for i in ids:
            self._cache[i] = (now, found.get(i, JobStatus(JobState.UNKNOWN, reason="Slurm does not know this job id")))

    def _mine(self, job_id: str, comment: str | None) -> bool:
        tag = self._watch.get(job_id)
        fields = parse_comment(comment)
        return tag is None or (fields is not None and fields.get("job") == tag)

    def _squeue(self, ids: list[str]) -> dict[str, JobStatus]:
        """States squeue knows; an id listed with another job's comment maps to UNKNOWN (id reused)."""
        if self._json is not False:
            self.queries += 1
            out = self.shell.run(["squeue", "--json", "--states=all", f"--jobs={','.join(ids)}"])
            if out.returncode == 0 and out.stdout.lstrip().startswith("{"):
                self._json = True
                return self._parse_json(out.stdout)
            if "Invalid job id" in out.stderr:  # newer Slurm, every id purged: the final-state sources answer
                return {}
            if "unrecognized option" in out.stderr or "invalid option" in out.stderr:
                self._json = False
            else:
                raise SlurmError(f"squeue failed: {out.stderr.strip() or out.stdout.strip()}")
        return self._squeue_text(ids)

    def _parse_json(self, text: str) -> dict[str, JobStatus]:
        found = {}
        for job in json.loads(text).get("jobs", []):
            job_id = str(job.get("job_id"))
            if not self._mine(job_id, job.get("comment")):
                found[job_id] = JobStatus(JobState.UNKNOWN, reason=f"job id {job_id} now belongs to another job")
                continue
            raw = job.get("job_state")
            raw = raw[0] if isinstance(raw, list) and raw else raw
            code, sig = _raw_exit(job.get("exit_code"))
            found[job_id] = _status(slurm_state(raw), code, sig, reason=job.get("state_reason"),
                                    restarts=job.get("restart_cnt") or 0, raw=str(raw))
            self._array_keys(job, found[job_id], found)
        return found

    def _array_keys(self, job: dict, status: JobStatus, found: dict[str, JobStatus]) -> None:
        """Also file an array record under `A_k`: one task (remember its own id), or every task
        of the pending remainder (one record, array_task_string "5-999" or "[5-999%10]")."""
        array_id = job.get("array_job_id")
        if not array_id:
            return
        pending = str(job.get("array_task_string") or "").strip("[]").split("%")[0]
        if pending:
            for task in expand_ranges(pending):
                found[f"{array_id}_{task}"] = status
            return
        task_id = job.get("array_task_id")
        if isinstance(task_id, int) and 0 <= task_id < 4_000_000_000:  # NO_VAL (0xfffffffe) = not a task
            key = f"{array_id}_{task_id}"
            found[key] = status
            self._raw[key] = str(job.get("job_id"))

    def _squeue_text(self, ids: list[str]) -> dict[str, JobStatus]:
        self.queries += 1
        out = self.shell.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r|%k"])
        found = {}
        for line in out.stdout.splitlines():
            job_id, state, reason, comment = (line.split("|", 3) + ["", "", ""])[:4]
            if job_id in ids and self._mine(job_id, comment):
                found[job_id] = _status(slurm_state(state), None, None, reason=reason, raw=state)
        # exit codes and restarts from scontrol for the finished ones (rare: old Slurm only)
        for job_id, st in list(found.items()):
            if st.done:
                sc = self.shell.run(["scontrol", "show", "job", "-o", job_id]).stdout
                m = re.search(r"ExitCode=(\d+):(\d+)", sc)
                r = re.search(r"Restarts=(\d+)", sc)
                if m:
                    found[job_id] = st.with_(exit_code=int(m[1]) if st.state is not JobState.COMPLETED else 0,
                                             signal=int(m[2]) or None, restarts=int(r[1]) if r else 0)
        return found

    def _final_states(self, ids: list[str]) -> dict[str, JobStatus]:
        """Jobs gone from squeue: sacct (accounting), else `sacct -c` (the jobcomp file)."""
        fields = ["-P", "-n", "-o", "jobid,state,exitcode,jobname"]
        if self._sacct_args is None:
            probe = self.shell.run(["sacct", "-X", "-j", ids[0], *fields])
            disabled = "accounting storage is disabled" in (probe.stdout + probe.stderr)
            self._sacct_args = ["sacct", "-c"] if disabled else ["sacct", "-X"]
        out = self.shell.run([*self._sacct_args, "-j", ",".join(ids), *fields])
        found: dict[str, JobStatus] = {}
        for line in out.stdout.splitlines():  # jobcomp: one line per end (requeues add lines): keep the last
            parts = line.split("|")
            if len(parts) < 3 or parts[0] not in ids:
                continue
            if len(parts) > 3 and self._names.get(parts[0]) not in (None, parts[3]):
                continue  # the same id, another job (a cluster that started over)
            state = slurm_state(parts[1])
            if not state.terminal:
                continue
            code, sig = _pair(parts[2])
            found[parts[0]] = _status(state, code if state is JobState.FAILED else code or None, sig,
                                      raw=parts[1].split()[0] if parts[1] else None)
        return found


_POLLERS: dict[str, SlurmPoller] = {}


def close_shells() -> None:
    """Forget every cluster shell and poller of this process, closing SSH connections."""
    with SHELLS_LOCK:
        forget_shells()
        _POLLERS.clear()


def poller_for(cluster: dict[str, Any]) -> SlurmPoller:
    shell = shell_for(cluster)
    with SHELLS_LOCK:
        if shell.key not in _POLLERS:
            _POLLERS[shell.key] = SlurmPoller(shell)
        return _POLLERS[shell.key]
