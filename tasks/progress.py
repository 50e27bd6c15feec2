"""A stage run's progress in the Prefect UI: one progress artifact, updated while the task waits on its job.

`run_reported(stage, request, inputs)` is what every stage task runs: pipeline/run.py:run_stage with the
PrefectReporter, plus a progress artifact (`<stage>-progress`, or `eval-<model>-progress` for the
eval's fan-out) created at 0 % when the task starts. A thread reads the job's
`output_dir/progress.json` (recipes/nano3/common/progress.py: step k/N and loss from the trainers,
shards or rows done/total from the data preps, tasks done/total and the running task's questions from
the eval) and the job's id (its jobref, by content key) every
POLL_S seconds and updates the artifact when either changed; a run that succeeds ends at 100 %.

The artifact's description is one line of `key value` fields joined by " · " (`describe`), e.g.
`job local 4711 · step 120/600 · loss 2.3100 · eta 40s` or
`model nano3-sft-model:v2 · job local 4712 · tasks 1/5 · now heldout_qa 64/212`: the UI shows it beside the percentage, and
`nemotron nano3 pipe` / scripts/quickstart read it back through the API (`parse`) to draw their rows.
"""

from __future__ import annotations

import contextvars
import threading
from pathlib import Path
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from nemotron_core.execution.refs import refs_for_key
from pipeline.run import prepare_job, run_stage
from recipes.nano3.common.progress import read_progress
from tasks.report import PrefectReporter, _key, in_prefect_run

POLL_S = 2.0  # a job moves on every few seconds at most; the API sees one update per change, no more
SEP = " · "


def describe(fields: dict[str, str]) -> str:
    return SEP.join(f"{k} {v}" for k, v in fields.items() if v)


def parse(description: str | None) -> dict[str, str]:
    """describe() backwards: {"job": "local 4711", "step": "120/600", ...} ({} for anything else)."""
    out: dict[str, str] = {}
    for part in (description or "").split(SEP):
        key, _, value = part.strip().partition(" ")
        if key and value:
            out[key] = value
    return out


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def fields_of(progress: Any, job: str | None, model: str | None) -> dict[str, str]:
    """The description's fields from a progress record (or None) and the job's id."""
    fields = {"model": model or "", "job": job or ""}
    if progress is not None:
        if progress.step is not None:
            fields["step"] = f"{progress.step}/{progress.total}" if progress.total else str(progress.step)
        if progress.loss is not None:
            fields["loss"] = f"{progress.loss:.4f}"
        fields["eta"] = eta_text(progress.eta())
        if progress.unit and progress.of:  # "shards 3/8", "rows 240/1650", "tasks 1/5"
            fields[progress.unit] = f"{progress.done or 0}/{progress.of}"
        if progress.task:  # "now heldout_qa 64/212"
            items = f" {progress.task_done or 0}/{progress.task_of}" if progress.task_of else ""
            fields["now"] = f"{progress.task}{items}"
    return fields


def percent(progress: Any) -> float:
    fraction = progress.fraction() if progress is not None else None
    return round(100.0 * (fraction or 0.0), 1)


def artifact_key(stage: Any, inputs: dict[str, str]) -> str:
    """`sft-progress`; a fanned-out stage names the input it fans over: `eval-nano3-sft-model-progress`."""
    model = fan_input(stage, inputs)
    return f"{_key(stage.name)}-{_key(model.partition(':')[0])}-progress" if model else f"{_key(stage.name)}-progress"


def fan_input(stage: Any, inputs: dict[str, str]) -> str | None:
    slot = next((s for s, inp in stage.inputs.items() if len(inp.upstreams) > 1), None)
    return inputs.get(slot) if slot else None


def published_folder(job: Any, ref: str | None) -> Path | None:
    """The local folder of the version `ref` of the job's output (None: no ref, or a remote store)."""
    try:
        folder = Path(job.registry.resolve(ref).path) if ref else None
    except Exception:  # noqa: BLE001 - a last progress read must not fail a stage that succeeded
        return None
    return folder if folder is not None and folder.is_dir() else None


def job_label(content_key: str) -> str | None:
    """'local 4711' for the newest job submitted for this content (None before it is submitted)."""
    try:
        refs = refs_for_key(content_key)
    except Exception:  # noqa: BLE001 - a label for watching; a bad ref must not fail the stage
        return None
    ref = refs[0] if refs else None
    return f"{ref.backend} {ref.id}" if ref is not None and ref.id else None


class ProgressArtifact:
    """The artifact and the thread that keeps it current (no-ops outside a Prefect run)."""

    def __init__(self, job: Any, model: str | None, key: str) -> None:
        self.job, self.model = job, model
        self.last = fields_of(None, None, model)
        self.progress: Any = None  # the latest record read
        self.id = create_progress_artifact(0.0, key=key, description=describe(self.last) or "waiting")
        self.stop = threading.Event()
        context = contextvars.copy_context()  # the run's settings and client reach the thread
        self.thread = threading.Thread(target=context.run, args=(self._poll,), daemon=True,
                                       name=f"progress-{key}")
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.wait(POLL_S):
            self.update()

    def update(self) -> None:
        self._read(self.job.output_dir)
        fields = fields_of(self.progress, job_label(self.job.key), self.model)
        if fields != self.last:
            self.last = fields
            self._send(percent(self.progress), fields)

    def _read(self, folder: Path) -> None:
        progress = read_progress(folder)
        if progress is not None:
            self.progress = progress

    def close(self, ok: bool, ref: str | None = None) -> None:
        """Stop the thread; a stage that succeeded ends at 100 % with its last record: a data prep's output
        folder, progress.json included, has moved into the registry by now (read there, through `ref`), so a
        job shorter than one poll shows its count too."""
        self.stop.set()
        self.thread.join(timeout=POLL_S + 5)
        if ok:
            self._read(self.job.output_dir)
            if (published := published_folder(self.job, ref)) is not None:
                self._read(published)
            fields = fields_of(self.progress, job_label(self.job.key), self.model)
            self._send(100.0, {**fields, "eta": "", "now": ""})  # nothing runs any more

    def _send(self, value: float, fields: dict[str, str]) -> None:
        try:
            update_progress_artifact(self.id, value, description=describe(fields) or "done")
        except Exception:  # noqa: BLE001 - the UI's progress is best-effort; the stage goes on
            pass


def run_reported(stage: Any, request: Any, inputs: dict[str, str]) -> str | None:
    """run_stage for a Prefect stage task: PrefectReporter (logs, report) plus the progress artifact."""
    artifact = None
    if in_prefect_run():
        try:
            job = prepare_job(stage, request, inputs)  # memoized: run_stage gets this same job
        except Exception:  # noqa: BLE001 - run_stage raises the same error, worded for the user
            job = None
        try:
            artifact = ProgressArtifact(job, fan_input(stage, inputs), artifact_key(stage, inputs)) if job else None
        except Exception:  # noqa: BLE001 - no progress artifact (API hiccup) is no reason to fail the stage
            artifact = None
    ok, ref = False, None
    try:
        ref = run_stage(stage, request, inputs, PrefectReporter())
        ok = True
        return ref
    finally:
        if artifact is not None:
            artifact.close(ok, ref)
