"""Docker jobs: one detached container per job, found again by its name from any process.

Why not nemo-run's docker scheduler: it runs `bash -c "<words joined unquoted>"`, creates a
bridge network ("nemo_run") unless the network is host, hands env vars (secrets included)
to the container's config where `docker inspect` shows them, and runs with `--rm`, so the
exit code is gone with the container. So nemo-run's `DockerExecutor` only configures the job
(image, volumes, env_vars, num_gpus, shm_size, ipc_mode, ulimits, runtime, network), and
this backend runs it with the docker client:

    docker run -d --name nemotron-<job dir name> --label nemotron.*=... --network none|host
        --user <uid>:<gid> -v <state>:<state> -v <mounts> ... IMAGE
        bash -c 'exec bash "$0" >>"$1" 2>&1' <job dir>/launch.sh <job dir>/job.log

The job dir and the state folder are mounted at their own paths, so job.yaml, logs, outputs
and the registry are where they are on this machine. launch.sh is the local wrapper
(wrapper.py): it exports the non-secret env, sources the 0600 secrets.env with tracing off
(not `--env-file`: that copies the values into the container's config), runs the command,
writes `exit_code`. State: exit_code file (+ `cancelled` marker) once written, else the
container's own state; an ended container is removed once its exit code is on disk.
Cancel: marker, `docker stop -t GRACE` (SIGTERM to the wrapper, which forwards it), then
the daemon SIGKILLs. Labels server/user/flow_run/job let the sweeper find containers whose
JobRef is gone (sweeper.py), scoped like Slurm's comment tags.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from nemotron_core.errors import NemotronError, ProfileError
from nemotron_core.execution import owner
from nemotron_core.execution.backends.wrapper import CANCEL_FILE, EXIT_FILE, read_exit_code, write_launch_script
from nemotron_core.execution.options import DockerExecutor, job_options
from nemotron_core.execution.refs import JobRef, key_digest
from nemotron_core.execution.secrets_file import scrubbed_environ
from nemotron_core.execution.states import JobState, JobStatus
from nemotron_core.launch import Plan
from nemotron_core.paths import state_dir

NAME_PREFIX = "nemotron-"
LABEL = "nemotron"  # nemotron.job, nemotron.flow_run, nemotron.key, nemotron.server, nemotron.user
NETWORKS = ("none", "host")  # never a bridge: containers stay on loopback or in their own namespace
_RUNNING = {"running", "restarting", "paused", "removing"}


def docker_client() -> str:
    """Debian's client beside the daemon when installed, else the one on PATH."""
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    found = shutil.which("docker")
    if not found:
        raise NemotronError("docker: no docker client on PATH; install docker.io (scripts/docker start does)")
    return found


def docker(host: str | None, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the docker client against `host` (DOCKER_HOST), secrets scrubbed from its environment."""
    env = scrubbed_environ()
    if host:
        env["DOCKER_HOST"] = host
    try:
        return subprocess.run([docker_client(), *args], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NemotronError(f"docker {args[0]}: no answer from {host or 'the default daemon'} in {timeout:.0f} s") \
            from None


def _error(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"


def _no_such(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode != 0 and "no such" in (proc.stderr or "").lower()


def container_name(ref: JobRef) -> str:
    return NAME_PREFIX + ref.tag


def job_command(executor: DockerExecutor, plan: Plan) -> list[str]:
    """plan.command with this machine's interpreter (and torchrun) replaced by the profile's `python`."""
    python = job_options(executor).python
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    inner_torchrun = str(Path(python).with_name("torchrun")) if os.path.isabs(python) else "torchrun"
    out = []
    for word in plan.command:
        out.append(python if word == sys.executable else inner_torchrun if word == torchrun else word)
    return out


def _bind(src: str, what: str) -> str:
    if ":" in src or "," in src:
        raise ProfileError(f"docker: {what} {src!r} holds ':' or ','; docker cannot bind-mount it (-v splits on ':'): "
                           f"use a state folder / job dir without them")
    return f"{src}:{src}"


def run_args(executor: DockerExecutor, ref: JobRef, launch: Path, log: Path) -> list[str]:
    """The `docker run` arguments for the job (every value an argv word, never shell text)."""

    job_dir = Path(ref.job_dir)
    labels = {"job": ref.tag, "flow_run": ref.flow_run_id or "", "key": key_digest(ref.content_key or ""),
              "server": owner.server_identity(), "user": owner.current_user()}
    args = ["run", "-d", "--name", container_name(ref), "--user", f"{os.getuid()}:{os.getgid()}",
            "--network", executor.network, "--workdir", str(job_dir)]
    if executor.network == "none":
        # Docker lists no hostname in /etc/hosts without a network, and torchrun's rendezvous (and Ray)
        # resolve it: name the container after its job and map that name to its loopback.
        host = ref.tag[:63]
        args += ["--hostname", host, "--add-host", f"{host}:127.0.0.1"]
    for k, v in labels.items():
        args += ["--label", f"{LABEL}.{k}={v}"]
    state = str(state_dir().resolve())
    binds = [_bind(state, "state folder")]
    if not str(job_dir).startswith(state + "/"):
        binds.append(_bind(str(job_dir), "job dir"))
    for bind in [*binds, *executor.volumes]:
        args += ["-v", bind]
    if executor.shm_size:
        args += ["--shm-size", str(executor.shm_size)]
    if executor.ipc_mode:
        args += ["--ipc", str(executor.ipc_mode)]
    if executor.runtime:
        args += ["--runtime", str(executor.runtime)]
    if executor.num_gpus:
        args += ["--gpus", "all" if executor.num_gpus < 0 else str(executor.num_gpus)]
    for ulimit in executor.ulimits:
        args += ["--ulimit", str(ulimit)]
    args += [executor.container_image,
             "bash", "-c", 'exec bash "$0" >>"$1" 2>&1', str(launch), str(log)]
    return args


class DockerBackend:
    name = "docker"

    def submit(self, executor: DockerExecutor, plan: Plan, ref: JobRef, secrets_path: Path | None) -> JobRef:
        opts = job_options(executor)
        job_dir = Path(ref.job_dir)
        launch = write_launch_script(job_dir, job_command(executor, plan), env=dict(executor.env_vars or {}),
                                     startup=opts.startup, title=plan.recipe, code_root=opts.code_root)
        log = job_dir / "job.log"
        log.touch()
        ref.cluster = {"docker_host": opts.docker_host, "container": container_name(ref)}
        ref.save()  # id None until the daemon has the container; recover_id finds it by name
        proc = docker(opts.docker_host, *run_args(executor, ref, launch, log))
        if proc.returncode != 0:
            # `docker run` creates the container before it fails to start it (e.g. --gpus without a GPU
            # driver): remove it, or recover_id would re-attach a later run to a container that never ran.
            docker(opts.docker_host, "rm", "-f", container_name(ref))
            raise NemotronError(f"profile '{opts.profile}': docker run failed: {_error(proc)}")
        ref.id = container_name(ref)
        ref.save()
        return ref

    def _host(self, ref: JobRef) -> str | None:
        return ref.cluster.get("docker_host")

    def _inspect(self, ref: JobRef) -> dict | None:
        """The container's State, or None when the daemon no longer has it."""
        proc = docker(self._host(ref), "inspect", "--format", "{{json .State}}", str(ref.id or container_name(ref)))
        if _no_such(proc):
            return None
        if proc.returncode != 0:
            raise NemotronError(f"docker job {ref.id}: {_error(proc)}")
        return json.loads(proc.stdout)

    def recover_id(self, ref: JobRef) -> str | None:
        return container_name(ref) if self._inspect(ref) is not None else None

    def status(self, ref: JobRef, *, max_age: float = 0.0) -> JobStatus:
        job_dir = Path(ref.job_dir)
        cancelled = (job_dir / CANCEL_FILE).exists()
        code = read_exit_code(job_dir)
        state = self._inspect(ref) if code is None or not ref.cluster.get("removed") else None
        ended = state is not None and state.get("Status") not in _RUNNING and state.get("Status") != "created"
        if code is None and ended:
            # The wrapper writes its record just before the container exits: read again now that it has
            # (a poll may read "no record" and then see the container already exited).
            code = read_exit_code(job_dir)
        if code is None and state is not None and ended:
            # Ended without the wrapper's record (SIGKILL, OOM, the daemon stopped it): keep the container's.
            code = int(state.get("ExitCode", 1))
            reason = "OOM-killed" if state.get("OOMKilled") else f"container exited {code} before the job recorded one"
            if not cancelled and code == 0:
                code = 1
            _record_exit(job_dir, code)
            ref.cluster["reason"] = reason
            ref.save()
            code = read_exit_code(job_dir)
        if code is not None:
            if state is not None and state.get("Status") not in _RUNNING:
                self._remove(ref)
            sig = code - 128 if code > 128 else None
            if cancelled:
                return JobStatus(JobState.CANCELLED, exit_code=code, signal=sig, raw="cancelled")
            if code == 0:
                return JobStatus(JobState.COMPLETED, exit_code=0, raw="exited")
            if ref.cluster.get("reason", "").startswith("OOM"):
                return JobStatus(JobState.OUT_OF_MEMORY, exit_code=code, reason=ref.cluster["reason"], raw="oom")
            return JobStatus(JobState.FAILED, exit_code=code, signal=sig, reason=ref.cluster.get("reason", ""),
                             raw="exited")
        if state is None:
            if cancelled:
                return JobStatus(JobState.CANCELLED, raw="cancelled")
            return JobStatus(JobState.FAILED, reason="the container is gone and the job recorded no exit code",
                             raw="lost")
        if state.get("Status") == "created":
            return JobStatus(JobState.PENDING, raw="created")
        return JobStatus(JobState.RUNNING, raw=str(state.get("Status")))

    def _remove(self, ref: JobRef) -> None:
        proc = docker(self._host(ref), "rm", "-f", str(ref.id or container_name(ref)))
        if proc.returncode == 0 or _no_such(proc):
            ref.cluster["removed"] = True
            ref.save()

    def cancel(self, ref: JobRef, *, grace: float = 10.0) -> None:
        state = self._inspect(ref)
        if state is None or state.get("Status") not in (*_RUNNING, "created"):
            return
        (Path(ref.job_dir) / CANCEL_FILE).touch()
        proc = docker(self._host(ref), "stop", "-t", str(int(grace)), str(ref.id), timeout=grace + 60)
        if proc.returncode != 0 and not _no_such(proc):
            raise NemotronError(f"docker job {ref.id}: docker stop failed: {_error(proc)}")

    def gone_from_queue(self, ref: JobRef) -> bool:
        state = self._inspect(ref)
        return state is None or state.get("Status") not in _RUNNING

    def log_files(self, ref: JobRef, *, app_only: bool = False) -> list[str]:
        return [str(Path(ref.job_dir) / "job.log")]


def _record_exit(job_dir: Path, code: int) -> None:
    tmp = job_dir / f"{EXIT_FILE}.tmp"
    tmp.write_text(f"{code}\n")
    os.replace(tmp, job_dir / EXIT_FILE)


def tagged_containers(host: str | None) -> list[dict[str, str]]:
    """Running nemotron containers of this server and user: {name, flow_run, job}."""

    proc = docker(host, "ps", "--filter", f"label={LABEL}.server={owner.server_identity()}",
                  "--filter", f"label={LABEL}.user={owner.current_user()}",
                  "--format", f'{{{{.Names}}}}\t{{{{.Label "{LABEL}.flow_run"}}}}\t{{{{.Label "{LABEL}.job"}}}}')
    if proc.returncode != 0:
        raise NemotronError(f"docker ps: {_error(proc)}")
    out = []
    for line in proc.stdout.splitlines():
        name, flow_run, job = (line.split("\t") + ["", "", ""])[:3]
        out.append({"name": name, "flow_run": flow_run, "job": job, "docker_host": host or ""})
    return out
