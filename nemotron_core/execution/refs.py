"""`JobRef`: what was submitted, persisted so any later process can find the job again.

A JobRef is written to `<job dir>/jobref.json` (atomically) *before* the backend is asked
to run anything (with `id = None`), and rewritten once the backend answers with an id.
A process that dies in between leaves a ref without an id; the backend recovers the id
from the job's tag (Slurm comment, the wrapper's pid file, the Ray submission id we chose).

Two indexes under `<state>/jobs/.index/` let a restarted orchestrator and the sweeper
find refs without walking every job dir:

    key/<sha256(content key)[:32]>/<job dir name>   one file per job, holding its job dir path
    flow/<flow run id>/<job dir name>                same, per Prefect flow run

`key_lock(content_key)` is an fcntl lock that makes "find, else submit" atomic across
processes on one machine, so two orchestrators racing on one key submit once.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from nemotron_core.errors import NemotronError
from nemotron_core.paths import state_dir

REF_FILE = "jobref.json"
BACKENDS = ("local", "slurm", "ray", "docker")


@dataclass
class JobRef:
    backend: str  # local | slurm | ray | docker
    job_dir: str  # local job dir (job.yaml, jobref.json, logs for local/Slurm-on-this-host)
    name: str  # recipe name, e.g. nano3/sft
    id: str | None = None  # Slurm job id | wrapper pid | Ray submission id | container name
    content_key: str | None = None
    flow_run_id: str | None = None
    submitted_at: str = ""  # UTC ISO time the ref was first written
    cluster: dict[str, Any] = field(default_factory=dict)  # how to reach the backend again

    @property
    def path(self) -> Path:
        return Path(self.job_dir) / REF_FILE

    @property
    def tag(self) -> str:
        """The unique tag of this submission (the job dir's name)."""
        return Path(self.job_dir).name

    def save(self) -> "JobRef":
        if not self.submitted_at:
            self.submitted_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        _index(self)
        return self

    @classmethod
    def load(cls, job_dir: str | Path) -> "JobRef":
        path = Path(job_dir) / REF_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NemotronError(f"{path}: no job reference here; is {job_dir} a job dir written by submit()?") from None
        except (OSError, ValueError) as e:
            raise NemotronError(f"{path}: unreadable job reference ({e}); delete the job dir or resubmit") from None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------- index


def index_root(root: Path | None = None) -> Path:
    return (root or state_dir()) / "jobs" / ".index"


def key_digest(content_key: str) -> str:
    return hashlib.sha256(content_key.encode()).hexdigest()[:32]


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _flow_folder(flow_run_id: str) -> str:
    return _SAFE.sub("_", flow_run_id)[:100]


def _index(ref: JobRef) -> None:
    entries = []
    if ref.content_key:
        entries.append(index_root() / "key" / key_digest(ref.content_key))
    if ref.flow_run_id:
        entries.append(index_root() / "flow" / _flow_folder(ref.flow_run_id))
    for folder in entries:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ref.tag).write_text(str(Path(ref.job_dir).resolve()) + "\n", encoding="utf-8")


def _load_folder(folder: Path) -> list[JobRef]:
    refs: list[JobRef] = []
    if not folder.is_dir():
        return refs
    for entry in folder.iterdir():
        try:
            job_dir = entry.read_text(encoding="utf-8").strip()
            refs.append(JobRef.load(job_dir))
        except (OSError, NemotronError):
            continue  # a job dir deleted by hand: the index entry is stale
    # Newest first: submitted_at, then the job dir name (which starts with a UTC stamp).
    refs.sort(key=lambda r: (r.submitted_at, r.tag), reverse=True)
    return refs


def refs_for_key(content_key: str) -> list[JobRef]:
    """Every persisted submission for `content_key`, newest first."""
    return [r for r in _load_folder(index_root() / "key" / key_digest(content_key)) if r.content_key == content_key]


def refs_for_flow_run(flow_run_id: str) -> list[JobRef]:
    """Every persisted submission tagged with `flow_run_id`, newest first."""
    return [r for r in _load_folder(index_root() / "flow" / _flow_folder(flow_run_id)) if r.flow_run_id == flow_run_id]


def all_refs() -> Iterator[JobRef]:
    """Every ref under `<state>/jobs` (walks the tree; for sweeping, not for hot paths)."""
    base = state_dir() / "jobs"
    if not base.is_dir():
        return
    for path in base.rglob(REF_FILE):
        try:
            yield JobRef.load(path.parent)
        except NemotronError:
            continue


@contextlib.contextmanager
def key_lock(content_key: str | None) -> Iterator[None]:
    """Hold an exclusive lock for `content_key` (no-op when None)."""
    if not content_key:
        yield
        return
    folder = index_root() / "lock"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{key_digest(content_key)}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
