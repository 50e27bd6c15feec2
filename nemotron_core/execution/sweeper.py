"""Finding and ending the jobs of a flow run that is gone.

Prefect does not carry a cancellation to Slurm or Ray by itself (Prefect 3.9): a flow's
`on_cancellation` / `on_crashed` hooks call `cancel_flow_run(flow_run_id)`, and a
periodic sweeper calls `sweep(is_alive)` for flow runs that died without running hooks
(machine lost, SIGKILL).

Two sources, because either can be missing: the persisted JobRefs (refs.py index by
flow run: local, Slurm, Ray and Docker jobs) and the backends themselves — every Slurm job we
submit carries `--comment nemotron:flow_run=<id>;key=<content key>;job=<job dir name>;server=<id>;user=<name>`,
every container the labels nemotron.{flow_run,key,job,server,user} (backends/docker.py), so jobs
whose JobRef is lost are still found.

Only our own jobs: a tagged Slurm job or container is considered only when its `server` (the Prefect
server that tracks its flow run) and `user` are this process's (owner.py). Another
server's flow runs are unknown here, and "unknown" must not read as "dead"; jobs without
those tags (older submissions) are never swept.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

from nemotron_core.errors import NemotronError
from nemotron_core.execution import owner
from nemotron_core.execution.backends.docker import docker, tagged_containers
from nemotron_core.execution.backends.slurm import list_tagged
from nemotron_core.execution.backends.slurm_shell import SlurmShell
from nemotron_core.execution.jobs import Job
from nemotron_core.execution.refs import all_refs, refs_for_flow_run
from nemotron_core.execution.states import JobStatus

ACTIVE_SLURM = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED",
                "RESIZING", "STOPPED"}


def jobs_of_flow_run(flow_run_id: str) -> list[Job]:
    return [Job(ref) for ref in refs_for_flow_run(flow_run_id)]


def _slurm_clusters(extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    clusters: dict[str, dict[str, Any]] = {}

    candidates = [extra] if extra else []
    if os.environ.get("SLURM_CONF"):
        candidates.append({"tunnel": "local", "slurm_conf": os.environ["SLURM_CONF"]})
    for cluster in candidates:
        clusters.setdefault(SlurmShell(cluster).key, cluster)
    return list(clusters.values())


def tagged_slurm_jobs(cluster: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Active Slurm jobs that this server and user submitted: {id, state, name, flow_run, key, job, server, user}."""

    server, user = owner.server_identity(), owner.current_user()
    jobs: list[dict[str, Any]] = []
    for c in _slurm_clusters(cluster):
        try:
            jobs.extend({**j, "cluster": c} for j in list_tagged(c)
                        if j["state"] in ACTIVE_SLURM and j.get("server") == server and j.get("user") == user)
        except NemotronError:
            continue
    return jobs


def _docker_hosts() -> list[str | None]:
    """The daemons to look at: this process's DOCKER_HOST (or the client's default), when a client exists."""
    if not (os.environ.get("DOCKER_HOST") or shutil.which("docker") or os.access("/usr/bin/docker", os.X_OK)):
        return []
    return [os.environ.get("DOCKER_HOST") or None]


def tagged_docker_jobs() -> list[dict[str, str]]:
    """Running containers this server and user started whose JobRef is gone ({name, flow_run, job, docker_host}).

    A container whose JobRef exists is left to the ref: a rerun may have adopted it (Job.adopt), and
    a container's labels cannot change, so its label may name the dead flow run that submitted it."""
    known = {ref.tag for ref in all_refs() if ref.backend == "docker"}
    found: list[dict[str, Any]] = []
    for host in _docker_hosts():
        try:
            found.extend(c for c in tagged_containers(host) if c["job"] not in known)
        except NemotronError:
            continue  # no daemon answering there: nothing of ours runs on it
    return found


def _stop_container(tagged: dict[str, str]) -> None:
    docker(tagged["docker_host"] or None, "stop", "-t", "10", tagged["name"], timeout=90)


def cancel_flow_run(flow_run_id: str, *, cluster: dict[str, Any] | None = None,
                    timeout: float = 60.0) -> dict[str, JobStatus | str]:
    """Cancel every still-active job of `flow_run_id`; returns {job: final status or 'scancel'/'docker stop'}."""
    done: dict[str, JobStatus | str] = {}
    seen_slurm_ids = set()
    for job in jobs_of_flow_run(flow_run_id):
        try:
            status = job.status(max_age=0)
            if not status.done:
                status = job.cancel(timeout=timeout)
        except NemotronError as e:
            done[job.ref.job_dir] = f"error: {e}"
            continue
        done[job.ref.job_dir] = status
        if job.ref.backend == "slurm":
            seen_slurm_ids.add(str(job.ref.id))
            if job.ref.cluster:
                cluster = cluster or job.ref.cluster
    for tagged in tagged_slurm_jobs(cluster):
        if tagged.get("flow_run") == flow_run_id and tagged["id"] not in seen_slurm_ids:
            SlurmShell(tagged["cluster"]).run(["scancel", tagged["id"]])
            done[f"slurm:{tagged['id']}"] = "scancel"
    for tagged in tagged_docker_jobs():
        if tagged["flow_run"] == flow_run_id:
            _stop_container(tagged)
            done[f"docker:{tagged['name']}"] = "docker stop"
    return done


def orphans(is_alive: Callable[[str], bool], *, cluster: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Active tagged Slurm jobs, and active JobRefs, whose flow run `is_alive` says is over."""
    found = [j for j in tagged_slurm_jobs(cluster) if j.get("flow_run") and not is_alive(j["flow_run"])]
    found += [{"id": c["name"], "backend": "docker", "flow_run": c["flow_run"], "job": c["job"]}
              for c in tagged_docker_jobs() if c["flow_run"] and not is_alive(c["flow_run"])]
    slurm_ids = {j["id"] for j in found}
    for ref in all_refs():
        if ref.flow_run_id and ref.backend != "slurm" and not is_alive(ref.flow_run_id):
            job = Job(ref)
            try:
                if not job.status(max_age=5).done:
                    found.append({"id": str(ref.id), "backend": ref.backend, "flow_run": ref.flow_run_id,
                                  "job": ref.tag, "job_dir": ref.job_dir})
            except NemotronError:
                continue
        elif ref.backend == "slurm" and str(ref.id) in slurm_ids:
            next(j for j in found if j["id"] == str(ref.id))["job_dir"] = ref.job_dir
    return found


def sweep(is_alive: Callable[[str], bool], *, cluster: dict[str, Any] | None = None) -> list[str]:
    """Cancel the orphans; returns the flow run ids whose jobs were cancelled."""
    flow_runs = sorted({o["flow_run"] for o in orphans(is_alive, cluster=cluster)})
    for flow_run_id in flow_runs:
        cancel_flow_run(flow_run_id, cluster=cluster)
    return flow_runs
