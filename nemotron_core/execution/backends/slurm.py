"""Slurm jobs: we render the sbatch script (slurm_render.py), submit it and read Slurm's own state.

Why not nemo-run's Experiment/torchx path for submission: its status comes from
`sacct --parsable2` (fails outright when accounting storage is disabled, as on the test
cluster) and is mapped through torchx, which turns PREEMPTED and TIMEOUT into FAILED;
it has no exit code, and its job handles live in `$NEMORUN_HOME/.slurm_jobs` keyed by
experiment. So: the sbatch script is rendered by sbatch_script.py from the executor's
fields, in nemo-run's layout but with every value quoted (nemo-run's own template writes
env values raw, upper-cases env names, and rewrites every `/nemo_run` in the text), with
the torchrun line nemo-run's launcher writes (slurm_executor.py); this module runs
`sbatch --parsable` on it, tags it, and owns status/cancel/requeue. Ray on Slurm in a
container uses nemo-run's `SlurmRayRequest` (the sbatch that `RayJob(...).start(dryrun=True)`
prints), fed only plain words and our quoted exports (render_ray_sbatch).

The Slurm modules, one job each:
    slurm_tags.py    the --job-name / --comment tag (flow_run, key, job, server, user)
    slurm_shell.py   SlurmShell: Slurm clients and file copies here or over SSH; remote_job_dir
    slurm_render.py  the sbatch script from executor + plan (sbatch_script.py writes the text)
    slurm_poll.py    SlurmPoller: one squeue per poll for every watched job; sacct/jobcomp after
    slurm.py         SlurmBackend: submit, status, cancel, requeue, retag, logs; list_tagged

Secrets: the script sources `<job dir>/secrets.env` with tracing off (and nothing in the
script is traced with `-x`: a startup command using `$HF_TOKEN` would print it), `sbatch`
runs with the secret-named variables and the profile's declared `secrets` removed from
its environment (sbatch copies its environment into the job, and slurmctld stores it in
its state folder), and a submission that fails removes the cluster's copy of the file.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

from nemotron_core.execution.backends.sbatch_script import RUNDIR
from nemotron_core.execution.backends.slurm_poll import SlurmPoller, array_task_ids, close_shells, expand_ranges, poller_for
from nemotron_core.execution.backends.slurm_render import render_job_script, renderer
from nemotron_core.execution.backends.slurm_shell import SlurmError, SlurmShell, shell_for
from nemotron_core.execution.backends.slurm_tags import job_name, make_comment, parse_comment
from nemotron_core.execution.options import JobPaths, SlurmExecutor, job_options, job_paths
from nemotron_core.execution.refs import JobRef
from nemotron_core.execution.secrets_file import SECRETS_FILE
from nemotron_core.execution.states import JobStatus
from nemotron_core.launch import Plan

# The Slurm modules' public names, importable from here as before the split.
__all__ = ["SlurmBackend", "SlurmError", "SlurmPoller", "SlurmShell", "array_task_ids", "close_shells", "expand_ranges",
           "job_name", "list_tagged", "make_comment", "parse_comment", "poller_for", "render_job_script",
           "shell_for"]


class SlurmBackend:
    name = "slurm"

    def cluster_info(self, executor: SlurmExecutor, paths: JobPaths) -> dict[str, Any]:
        shell = SlurmShell.for_executor(executor)
        info = dict(shell.cluster)
        info.update({"host_job_dir": paths.host, "job_name": None})
        if info.get("tunnel") == "ssh":
            info["remote_job_dir"] = job_options(executor).remote_job_dir
        return info

    def stage(self, executor: SlurmExecutor, plan: Plan, ref: JobRef, secrets_path: Path | None) -> str:
        """Everything a submit does before `sbatch`: the code, job.yaml, train.yaml, sbatch.sh and the
        secrets file in the job dir on the cluster (here or through the SSH tunnel); returns the
        script's path there. Saves no ref and submits nothing (`--stage` stops here)."""
        paths = job_paths(executor, ref.job_dir)
        name = job_name(plan.recipe)
        ref.cluster = {**self.cluster_info(executor, paths), "job_name": name}
        shell = shell_for(ref.cluster)
        shell.preflight()
        image = executor.container_image or ""
        if image.endswith(".sqsh") and shell.run(["test", "-f", image]).returncode != 0:
            raise SlurmError(f"container image {image} does not exist on the cluster: create it with "
                             f"`nemotron kit squash <image> --run <profile>`")
        ship = executor.ships_code
        comment = make_comment(flow_run_id=ref.flow_run_id, content_key=ref.content_key, tag=ref.tag)
        render = renderer(executor, plan)
        script = render(executor, plan, paths, name=name, comment=comment, ship_code=ship)
        self._ship(shell, executor, paths, ship)
        self._mount_points(shell, executor, paths)
        (paths.local / "sbatch.sh").write_text(script, encoding="utf-8")
        if secrets_path is not None:
            shell.put(secrets_path, f"{paths.host}/{SECRETS_FILE}", private=True)
        for name_ in ("train.yaml", "job.yaml", "sbatch.sh"):
            if (paths.local / name_).is_file():
                shell.put(paths.local / name_, f"{paths.host}/{name_}")
        return f"{paths.host}/sbatch.sh"

    def submit(self, executor: SlurmExecutor, plan: Plan, ref: JobRef, secrets_path: Path | None) -> JobRef:
        try:
            sbatch_path = self.stage(executor, plan, ref, secrets_path)
            shell = shell_for(ref.cluster)
            ref.save()  # id still None: a crash from here on is recovered by comment (recover_id)
            out = shell.run(["sbatch", "--parsable", "--requeue", sbatch_path], timeout=120,
                            hide=job_options(executor).secret_names)
            if out.returncode != 0:
                raise SlurmError(f"sbatch {sbatch_path} failed: {' '.join(out.stderr.split()) or out.stdout.strip()}")
        except BaseException:
            sent = (Path(ref.job_dir) / "sbatch.sh").is_file()  # stage() copies the secrets after writing it
            if secrets_path is not None and sent and not shell_for(ref.cluster).local_fs():
                # no job will read the cluster's copy
                shell_for(ref.cluster).run(["rm", "-f", f"{ref.cluster['host_job_dir']}/{SECRETS_FILE}"])
            raise
        ref.id = out.stdout.strip().split(";")[0]
        ref.save()
        poller_for(ref.cluster).watch(ref.id, ref.tag, ref.cluster["job_name"])
        return ref

    def _ship(self, shell: SlurmShell, executor: SlurmExecutor, paths: JobPaths, ship: bool) -> None:
        """Package the code into <job dir>/code (or link this checkout there when nothing is shipped)."""
        code_dir = Path(paths.local) / "code"
        if not ship:
            if shell.local_fs() and not code_dir.exists():
                code_dir.symlink_to(job_options(executor).code_root, target_is_directory=True)
            return
        archive = Path(executor.packager.package(Path(job_options(executor).code_root), str(paths.local), "code"))
        if shell.local_fs() and paths.host == str(paths.local):
            code_dir.mkdir(parents=True, exist_ok=True)
            import tarfile  # lazy: only unpacking shipped code needs it; a dry run imports this module to render sbatch

            with tarfile.open(archive) as tar:
                tar.extractall(code_dir, filter="data")
            archive.unlink()  # the unpacked tree is the record; the tarball would double the job dir
            return
        remote_tar = f"{paths.host}/code.tar.gz"
        shell.put(archive, remote_tar)
        out = shell.run(["bash", "-c", f"mkdir -p {shlex.quote(paths.host_code)} && "
                                       f"tar -xzf {shlex.quote(remote_tar)} -C {shlex.quote(paths.host_code)} && "
                                       f"rm -f {shlex.quote(remote_tar)}"])
        if out.returncode != 0:
            raise SlurmError(f"unpacking the code on the cluster failed: {out.stderr.strip()}")
        archive.unlink()

    def _mount_points(self, shell: SlurmShell, executor: SlurmExecutor, paths: JobPaths) -> None:
        """Targets under /nemo_run (`${auto_mount:}` → /nemo_run/mounts/<name>) exist in the job dir mounted there."""
        if not executor.container_image:
            return
        targets = [m.split(":")[1] for m in executor.container_mounts or [] if m.count(":") >= 1]
        folders = [paths.host + t[len(RUNDIR):] for t in targets if t.startswith(RUNDIR + "/") and ".." not in t]
        if not folders:
            return
        if shell.local_fs():
            for folder in folders:
                Path(folder).mkdir(parents=True, exist_ok=True)
        else:
            shell.run(["mkdir", "-p", *folders])

    def recover_id(self, ref: JobRef) -> str | None:
        """The job id of a submission whose ref was saved without one (found by its comment)."""
        shell = shell_for(ref.cluster)
        out = shell.run(["squeue", "-h", "-t", "all", "-o", "%i|%k"])
        for line in out.stdout.splitlines():
            job_id, _, comment = line.partition("|")
            fields = parse_comment(comment)
            if fields and fields.get("job") == ref.tag:
                return job_id
        return None

    def status(self, ref: JobRef, *, max_age: float = 1.0) -> JobStatus:
        return poller_for(ref.cluster).status(_job_id(ref), ref.tag, name=ref.cluster.get("job_name"), max_age=max_age)

    def cancel(self, ref: JobRef) -> None:
        shell = shell_for(ref.cluster)
        out = shell.run(["scancel", str(ref.id)])
        if out.returncode != 0 and "already completed" not in out.stderr and "Invalid job id" not in out.stderr:
            raise SlurmError(f"scancel {ref.id} failed: {out.stderr.strip()}")

    def gone_from_queue(self, ref: JobRef) -> bool:
        """True once the job is no longer pending/running/completing (plain `squeue` lists it no more)."""
        out = shell_for(ref.cluster).run(["squeue", "-h", "-j", str(ref.id), "-o", "%i"])
        return str(ref.id) not in out.stdout.split()

    def retag(self, ref: JobRef) -> None:
        """Rewrite the job's comment for `ref.flow_run_id` (a rerun adopted it): the sweeper follows."""
        comment = make_comment(flow_run_id=ref.flow_run_id, content_key=ref.content_key, tag=ref.tag)
        out = shell_for(ref.cluster).run(["scontrol", "update", f"JobId={ref.id}", f"Comment={comment}"])
        if out.returncode != 0:
            raise SlurmError(f"scontrol update JobId={ref.id} Comment=... failed: {out.stderr.strip()}")

    def requeue(self, ref: JobRef, *, start_now: bool = True) -> None:
        """`scontrol requeue`; with start_now, lift the 121 s BeginTime Slurm sets (a requeued job is held until 121 s after its end)."""
        shell = shell_for(ref.cluster)
        out = shell.run(["scontrol", "requeue", str(ref.id)])
        if out.returncode != 0:
            raise SlurmError(f"scontrol requeue {ref.id} failed: {out.stderr.strip()}")
        poller_for(ref.cluster).forget(_job_id(ref))
        poller_for(ref.cluster).watch(_job_id(ref), ref.tag)
        if not start_now:
            return
        # While the job is still COMPLETING, an update is accepted but the requeue then sets
        # BeginTime = end + 121 s over it: wait for PENDING, update, and check it took.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            show = shell.run(["scontrol", "show", "job", "-o", str(ref.id)]).stdout
            state = re.search(r"JobState=(\S+)", show)
            restarts = re.search(r"Restarts=(\d+)", show)
            if state and restarts and int(restarts[1]) > 0 and state[1] != "PENDING" and state[1] != "COMPLETING":
                return  # started again (or already ended again)
            if state and state[1] == "PENDING":
                eligible = re.search(r"EligibleTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", show)
                when = _dt.datetime.strptime(eligible[1], "%Y-%m-%dT%H:%M:%S") if eligible else None
                if when is not None and when <= _dt.datetime.now() + _dt.timedelta(seconds=1):
                    return  # eligible now: the scheduler starts it
                shell.run(["scontrol", "update", f"jobid={ref.id}", "StartTime=now"])
            time.sleep(0.3)
        raise SlurmError(f"job {ref.id} was requeued but did not become eligible within 60 s "
                         f"(`scontrol show job {ref.id}`)")

    def log_files(self, ref: JobRef, *, app_only: bool = False) -> list[str]:
        host = ref.cluster.get("host_job_dir") or ref.job_dir
        name = ref.cluster.get("job_name") or "*"
        shell = shell_for(ref.cluster)
        files = []
        if not app_only:
            files += shell.glob(host, f"sbatch_{name}_{ref.id}.out")
        files += sorted(shell.glob(host, f"log-{name}_{ref.id}_*.out"), key=_task_number)
        if not files and ref.id and (Path(host) / "ray" / "logs").is_dir():
            files = sorted(str(p) for p in (Path(host) / "ray" / "logs").glob("ray-job*.log"))
        return files

    def read(self, ref: JobRef, path: str, offset: int) -> bytes:
        return shell_for(ref.cluster).read_from(path, offset)


def _job_id(ref: JobRef) -> str:
    """The Slurm job id of a submitted ref (Job recovers a lost one by comment before asking)."""
    if ref.id is None:
        raise SlurmError(f"{ref.job_dir}: the Slurm job has no id yet (sbatch did not answer)")
    return str(ref.id)


def _task_number(path: str) -> int:
    """log-<name>_<id>_<task>.out -> task, so task 10 sorts after task 9."""
    m = re.search(r"_(\d+)\.out$", path)
    return int(m[1]) if m else 0


def list_tagged(cluster: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Every job on the cluster carrying a nemotron comment: id, state, name and the comment's fields."""
    shell = SlurmShell(cluster or {"tunnel": "local", "slurm_conf": os.environ.get("SLURM_CONF")})
    out = shell.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%j|%k"])
    jobs = []
    for line in out.stdout.splitlines():
        job_id, state, name, comment = (line.split("|", 3) + ["", "", ""])[:4]
        fields = parse_comment(comment)
        if fields is not None:
            jobs.append({"id": job_id, "state": state, "name": name, **fields})
    return jobs
