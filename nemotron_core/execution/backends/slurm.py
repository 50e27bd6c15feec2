"""Slurm jobs: we render the sbatch script (sbatch_script.py), submit it and read Slurm's own state.

Why not nemo-run's Experiment/torchx path for submission: its status comes from
`sacct --parsable2` (fails outright when accounting storage is disabled, as on the test
cluster) and is mapped through torchx, which turns PREEMPTED and TIMEOUT into FAILED;
it has no exit code, and its job handles live in `$NEMORUN_HOME/.slurm_jobs` keyed by
experiment. So: the sbatch script is rendered by sbatch_script.py from the executor's
fields, in nemo-run's layout but with every value quoted (nemo-run's own template writes
env values raw, upper-cases env names, and rewrites every `/nemo_run` in the text), with
nemo-run's torchrun launcher (through torchx) for the command; this module runs
`sbatch --parsable` on it, tags it, and owns status/cancel/requeue. Ray on Slurm in a
container uses nemo-run's `SlurmRayRequest` (the sbatch that `RayJob(...).start(dryrun=True)`
prints), fed only plain words and our quoted exports (render_ray_sbatch).

Tags: `--job-name nemotron-<recipe>` and
`--comment nemotron:flow_run=<id>;key=<content key>;job=<job dir name>;server=<id>;user=<name>`
(server and user: whose sweeper may cancel it, see owner.py); the `job` part is
unique per submission, so a job id that Slurm reused (ids restart at 1 on a fresh
cluster) is never mistaken for ours, and a submission whose id was lost (orchestrator
killed between sbatch and saving the ref) is found again by comment.

State, one query per poll for every job this process watches (`SlurmPoller`):
1. `squeue --json --states=all --jobs=a,b,c` (lists finished jobs until MinJobAge;
   `exit_code` there is the raw wait status: exit = v >> 8, signal = v & 0x7f). Slurm
   22.05 ignores every filter (--jobs, --me, -u) when --json is given and lists all jobs,
   so ids are matched here; newer versions honour --jobs;
2. ids squeue no longer lists: `sacct -X` (accounting) or `sacct -c` (the jobcomp
   file when accounting is disabled) — the final state comes from there, because
   jobcomp's ExitCode reads 0:0 for CANCELLED/TIMEOUT/PREEMPTED;
3. older Slurm without `squeue --json`: `squeue -h -t all -o ...` with the same flow.

Secrets: the script sources `<job dir>/secrets.env` with tracing off (and nothing in the
script is traced with `-x`: a startup command using `$HF_TOKEN` would print it), `sbatch`
runs with the secret-named variables and the profile's declared `secrets` removed from
its environment (sbatch copies its environment into the job, and slurmctld stores it in
its state folder), and a submission that fails removes the cluster's copy of the file.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable

from nemotron_core.errors import NemotronError
from nemotron_core.execution.executors import JobPaths, job_options, job_paths, nemo_run
from nemotron_core.execution.refs import JobRef
from nemotron_core.execution.secrets_file import SECRETS_FILE, scrubbed_environ, source_lines
from nemotron_core.execution.states import JobState, JobStatus, slurm_state
from nemotron_core.paths import state_dir

COMMENT_PREFIX = "nemotron:"
_FINAL_LIFETIME = 3600.0  # seconds a final status stays cached


class SlurmError(NemotronError):
    """sbatch/squeue/scancel failed, or Slurm is not reachable."""


# --------------------------------------------------------------------------- tags


def job_name(recipe: str) -> str:
    return "nemotron-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", recipe).strip("-")


def make_comment(*, flow_run_id: str | None, content_key: str | None, tag: str) -> str:
    """The job's tag; `server`/`user` say whose sweeper may cancel it (owner.py)."""
    from nemotron_core.execution.owner import current_user, server_identity

    clean = lambda v: re.sub(r"[^A-Za-z0-9_.:/@+-]", "_", str(v)) if v else ""  # noqa: E731
    return (f"{COMMENT_PREFIX}flow_run={clean(flow_run_id)};key={clean(content_key)};job={clean(tag)};"
            f"server={server_identity()};user={current_user()}")


def parse_comment(comment: str | None) -> dict[str, str] | None:
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    fields = {}
    for part in comment[len(COMMENT_PREFIX):].split(";"):
        k, _, v = part.partition("=")
        fields[k] = v
    return fields


# --------------------------------------------------------------------------- shell


class SlurmShell:
    """Runs Slurm commands on the cluster: here (LocalTunnel) or over SSH (nemo-run SSHTunnel).

    Built from `ref.cluster` so a later process reaches the same cluster without the profile.
    """

    def __init__(self, cluster: dict[str, Any]):
        self.cluster = dict(cluster)
        self.kind = self.cluster.get("tunnel", "local")
        self._ssh = None
        self._ssh_lock = threading.RLock()  # one SSH connection, used by one thread at a time
        self._checked = False
        self._home: str | None = None

    @property
    def key(self) -> str:
        if self.kind == "ssh":
            return f"ssh://{self.cluster.get('user', '')}@{self.cluster.get('host')}:{self.cluster.get('port') or 22}"
        return f"local:{self.cluster.get('slurm_conf') or ''}"

    @classmethod
    def for_executor(cls, executor) -> "SlurmShell":
        tunnel = executor.tunnel
        if type(tunnel).__name__ == "SSHTunnel":
            cluster = job_options(executor).ssh or {"tunnel": "ssh", "host": tunnel.host, "user": tunnel.user,
                                                    "port": tunnel.port, "identity": tunnel.identity}
            return cls(dict(cluster))
        return cls({"tunnel": "local", "slurm_conf": job_options(executor).slurm_conf or os.environ.get("SLURM_CONF")})

    def home(self) -> str:
        """The login node's $HOME (asked once per shell)."""
        if self._home is None:
            from nemotron_core.execution.ssh import remote_home

            self._home = remote_home(self.run, self.cluster)
        return self._home

    def env(self, hide: Iterable[str] = ()) -> dict[str, str]:
        """This environment minus secret-named variables and `hide` (a profile's declared secrets)."""
        env = scrubbed_environ(names=hide)
        if self.cluster.get("slurm_conf"):
            env["SLURM_CONF"] = self.cluster["slurm_conf"]
        return env

    def preflight(self) -> None:
        """Fail in one line, at once, where a Slurm client would hang or fail late (slurm.md gotchas 1-3)."""
        if self.kind != "local":
            return
        conf = self.cluster.get("slurm_conf")
        if conf and not Path(conf).is_file():  # checked every time: a test cluster may be gone
            raise SlurmError(f"SLURM_CONF={conf} does not exist (Slurm clients would hang 60 s); "
                             f"start the cluster (scripts/slurm start) or fix SLURM_CONF")
        if self._checked:
            return
        if shutil.which("sbatch", path=self.env().get("PATH")) is None:
            raise SlurmError("sbatch is not on PATH: install the Slurm client here, or use a profile with "
                             "tunnel = \"ssh\" and host = <login node>")
        self._checked = True

    def run(self, argv: list[str], *, timeout: float = 60, input: str | None = None,
            hide: Iterable[str] = ()) -> subprocess.CompletedProcess:
        """Run a Slurm client; `hide` names variables kept out of its environment (sbatch copies
        its environment into the job, and slurmctld stores it in its state folder)."""
        self.preflight()
        if self.kind == "ssh":
            return self._run_ssh(argv, timeout=timeout, input=input)
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(hide),
                                  input=input)
        except subprocess.TimeoutExpired:
            raise SlurmError(f"'{shlex.join(argv)}' did not answer in {timeout:.0f} s: is slurmctld up? "
                             f"(`scontrol ping`)") from None

    def _tunnel(self):
        """The open SSH connection; (re)connects when there is none or the last one dropped."""
        from nemotron_core.execution import ssh

        if self._ssh is None or not ssh.connected(self._ssh):
            if self._ssh is not None:
                ssh.close(self._ssh)
                self._ssh = None
            self._ssh = ssh.connect(self.cluster)
        return self._ssh

    def _over_ssh(self, what: str, action, *, retry: bool):
        """Run `action(tunnel)` on the connection. A connection that dropped (login node rebooted,
        network gone) is reopened and, when `retry` (the action can safely run twice), tried once
        more; otherwise, or when reconnecting fails, one SSHError line."""
        from nemotron_core.execution import ssh

        with self._ssh_lock:
            for attempt in (1, 2):
                tunnel = self._tunnel()
                try:
                    return action(tunnel)
                except Exception as e:
                    if not ssh.connection_lost(e):
                        raise
                    ssh.close(tunnel)
                    self._ssh = None
                    if attempt == 2 or not retry:
                        where = f"profile '{self.cluster['profile']}': " if self.cluster.get("profile") else ""
                        raise ssh.SSHError(f"{where}the connection to {ssh.describe(self.cluster)} was lost during "
                                           f"{what} ({type(e).__name__}: {' '.join(str(e).split()) or 'closed'}); "
                                           f"run again: the job is found again (re-attached) from its "
                                           f"job dir") from None

    def _run_ssh(self, argv: list[str], *, timeout: float, input: str | None) -> subprocess.CompletedProcess:
        from invoke.exceptions import CommandTimedOut

        if input is not None:
            raise ValueError("stdin is not forwarded over SSH here; copy a file with put() instead")
        command = shlex.join(argv)
        try:
            # sbatch is never sent twice: a submission lost with the connection is found by its comment.
            result = self._over_ssh(f"'{argv[0]}'", lambda t: t.run(command, hide=True, warn=True, timeout=timeout),
                                    retry=argv[0] != "sbatch")
        except CommandTimedOut:
            raise SlurmError(f"'{command[:200]}' did not answer in {timeout:.0f} s on "
                             f"{self.cluster.get('host')}") from None
        return subprocess.CompletedProcess(argv, result.return_code, result.stdout, result.stderr)

    # files on the cluster's filesystem ---------------------------------------------------

    def local_fs(self) -> bool:
        return self.kind == "local"

    def put(self, local: Path, remote: str, *, private: bool = False) -> None:
        """Copy a local file to the cluster's filesystem (nothing to do when it is the same file).

        `private`: the remote file is created 0600 before any byte is sent (secrets never sit
        in a readable file, and never travel on a command line, where `ps` would show them).
        """
        if self.local_fs():
            if Path(local).resolve() != Path(remote).resolve():
                Path(remote).parent.mkdir(parents=True, exist_ok=True)
                if private:
                    os.close(os.open(remote, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
                shutil.copyfile(local, remote)
            return
        folder, target = shlex.quote(str(Path(remote).parent)), shlex.quote(remote)
        prepare = f"mkdir -p {folder}" + (f" && (umask 077; : > {target}) && chmod 600 {target}" if private else "")
        out = self.run(["bash", "-c", prepare])
        if out.returncode != 0:
            raise SlurmError(f"cannot write {remote} on {self.cluster.get('host')}: {out.stderr.strip()}")
        self._over_ssh(f"the copy of {Path(local).name}", lambda t: t.put(str(local), remote), retry=True)

    def read_from(self, path: str, offset: int) -> bytes:
        if self.local_fs():
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    return fh.read()
            except FileNotFoundError:
                return b""
        out = self.run(["tail", "-c", f"+{offset + 1}", path])
        return out.stdout.encode() if out.returncode == 0 else b""

    def glob(self, folder: str, pattern: str) -> list[str]:
        if self.local_fs():
            return sorted(str(p) for p in Path(folder).glob(pattern))
        out = self.run(["bash", "-c", f"cd {shlex.quote(folder)} 2>/dev/null && ls -1 {pattern} 2>/dev/null"])
        return sorted(f"{folder}/{name}" for name in out.stdout.split())


# --------------------------------------------------------------------------- rendering


@contextmanager
def _quiet_nemo_run():
    """nemo-run logs 'Detected Torchrun launcher...' to stdout through its rich console."""
    from nemo_run.core.frontend.console.api import CONSOLE

    quiet, CONSOLE.quiet = CONSOLE.quiet, True
    try:
        yield
    finally:
        CONSOLE.quiet = quiet


def remap_words(words: list[str], executor, paths: JobPaths, *, ship_code: bool) -> list[str]:
    """Rewrite this machine's paths in a command line to the paths the job sees.

    The local job dir → the job's dir (first: it lies under the checkout); the checkout
    → the job's code dir (when code is shipped); this interpreter → the job's; the
    venv's torchrun → `torchrun` on the job's PATH.
    """
    import sys

    opts = job_options(executor)
    local_job, root = str(paths.local), opts.code_root.rstrip("/")
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    out = []
    for w in words:
        if w == sys.executable:
            w = opts.python
        elif w == torchrun:
            w = "torchrun"
        elif (moved := _moved(w, local_job, paths.in_job)) is not None:
            w = moved
        elif ship_code and (moved := _moved(w, root, paths.code)) is not None:
            w = moved
        out.append(w)
    return out


def _moved(word: str, old: str, new: str) -> str | None:
    """`word` with the path `old` at its start (or after `key=`) replaced by `new`; None when it has
    none there (a path inside a longer argument is the user's text, not ours to rewrite)."""
    key, eq, value = word.partition("=")
    for prefix, rest in (("", word), (key + eq, value) if eq else ("", "")):
        if rest and (rest == old or rest.startswith(old + "/")):
            return prefix + new + rest[len(old):]
    return None


def _split_torchrun(plan) -> tuple[str, list[str]] | None:
    """(script, args) of a plan built by launch.plan_job for the torchrun launcher."""
    script = str(plan.script)
    if plan.launcher != "torchrun" or script not in plan.command:
        return None
    i = plan.command.index(script)
    return script, plan.command[i + 1:]


def _prepared(executor, paths: JobPaths, *, name: str, comment: str):
    """A copy of the executor set up for this job: job dir, name, comment, the state folder mounted."""
    from nemo_run.core.execution.slurm import SlurmJobDetails

    run = nemo_run()
    ex = copy.copy(executor)
    # Rendering only reads tunnel.job_dir; a connected SSHTunnel holds locks that cannot be copied.
    ex.tunnel = run.LocalTunnel(job_dir=str(Path(paths.host).parent))
    ex = copy.deepcopy(ex)
    ex.job_dir = ex.experiment_dir = paths.host
    ex.experiment_id = Path(paths.host).name
    ex.job_details = SlurmJobDetails(job_name=name, folder=paths.host)
    ex.comment = comment
    if ex.container_image and not job_options(executor).remote_job_dir:
        # The job's exported caches/homes/TMPDIR (build_env_vars) point into this host's state
        # folder: the container sees it at the same path. (An SSH cluster's point under
        # remote_job_dir, which the profile's mounts must cover.)
        folder = str(state_dir())
        ex.container_mounts = [*(ex.container_mounts or []), f"{folder}:{folder}"]
    return ex


def _setup_lines(ex, paths: JobPaths) -> list[str]:
    """Secrets sourced untraced, then the executor's setup lines (PATH, startup_commands: code by design)."""
    secrets = f"{paths.host}/{SECRETS_FILE}"
    return [*source_lines(secrets, restore="-v"), *(ex.setup_lines.splitlines() if ex.setup_lines else [])]


def render_sbatch(executor, plan, paths: JobPaths, *, name: str, comment: str, ship_code: bool) -> str:
    """The sbatch script for `plan` (sbatch_script.py: nemo-run's layout, values quoted); writes nothing."""
    from nemotron_core.execution.backends import sbatch_script
    from nemotron_core.execution.shellsafe import check_command

    run = nemo_run()
    from nemo_run.run.torchx_backend.packaging import package

    profile = job_options(executor).profile
    ex = _prepared(executor, paths, name=name, comment=comment)
    env = dict(ex.env_vars or {})
    split = _split_torchrun(plan)
    if split and ex.launcher is not None:
        script, args = split
        words = remap_words([script, *args], executor, paths, ship_code=ship_code)
        marker = "__nemotron_script__"
        with _quiet_nemo_run():
            app = package(name, run.Script(path=marker, args=[], entrypoint="python"), ex,
                          serialize_metadata_for_scripts=False)
        values = ex.macro_values()
        role = values.apply(app.roles[0]) if values else app.roles[0]
        command = sbatch_script.torchrun_command(role, marker, words, profile)
        env = {**{k: v for k, v in role.env.items() if k not in env}, **env}  # torchx's own (LOGLEVEL)
    else:
        words = remap_words(plan.command, executor, paths, ship_code=ship_code)
        command = shlex.join(check_command(words))
    return sbatch_script.render(ex, name=name, host_job_dir=paths.host, command=command, env=env,
                                setup=_setup_lines(ex, paths), profile=profile)


def render_ray_sbatch(executor, plan, paths: JobPaths, *, name: str, comment: str, ship_code: bool) -> str:
    """The sbatch script of nemo-run's Slurm RayJob (head + workers, then the command on the head).

    Its template writes paths, image, mounts, account and partition unquoted in many places,
    so those must be plain words here (checked, else refused in one line); our env is exported
    quoted in the setup lines (nemo-run gets none), and the command travels in a variable:
    the template puts it inside double quotes, where `$(...)` would run.
    """
    nemo_run()
    from nemo_run.run.ray.slurm import SlurmRayRequest

    from nemotron_core.execution.shellsafe import check_command, check_value, export_lines

    profile = job_options(executor).profile
    ex = _prepared(executor, paths, name=name, comment=comment)
    plain = re.compile(r"[A-Za-z0-9_.:/@+=-]*\Z")
    for key, value in [("job dir", paths.host), ("container_image", ex.container_image), ("account", ex.account),
                       ("partition", ex.partition), ("gres", ex.gres),
                       *(("mounts", m) for m in ex.container_mounts or [])]:
        if value is not None and not plain.match(check_value(value, profile=profile, key=key)):
            raise SlurmError(f"profile '{profile}': {key} = {value!r} holds a space or shell character, which "
                             f"nemo-run's Ray container template writes unquoted; use a plain path/name "
                             f"(letters, digits, . _ - / : @ + =)")
    words = remap_words(plan.command, executor, paths, ship_code=ship_code)
    command = shlex.join(check_command(words))
    env = dict(ex.env_vars or {})
    ex.env_vars = {}
    ex.setup_lines = "\n".join(["{ set +vx; } 2>/dev/null  # nemotron: startup lines are not traced",
                                *export_lines(env, profile=profile), *_setup_lines(ex, paths),
                                f"NEMOTRON_COMMAND={shlex.quote(command)}"])
    with _quiet_nemo_run():
        req = SlurmRayRequest(name=name, cluster_dir=f"{paths.host}/ray", template_name=ex.ray_template, executor=ex,
                              command="$NEMOTRON_COMMAND", workdir=paths.code if ship_code else None,
                              nemo_run_dir=paths.host, launch_cmd=["sbatch", "--parsable"])
        return fix_ray_srun_flags(req.materialize())


def fix_ray_srun_flags(text: str) -> str:
    """nemo-run's Ray template writes `srun -A=<account> -p=<partition>`: srun reads the short
    options' values as '=batch' ("invalid partition specified: =batch"), and `-A=None` without
    an account. Long forms instead; no account flag when there is none (the job's own applies)."""
    text = re.sub(r" -A=None(?= )", "", text)
    text = re.sub(r" -A=(\S+)", r" --account=\1", text)
    return re.sub(r" -p=(\S+)", r" --partition=\1", text)


def renderer(executor, plan):
    """render_sbatch, or a Ray cluster in front of the command for a `launch = "ray"` recipe.

    In a container: nemo-run's RayJob template (render_ray_sbatch). Without one (its template
    runs every srun with pyxis flags, so it fails at once there): on several nodes our own
    head/worker script (ray_slurm.py); on one node a plain sbatch job whose recipe starts Ray
    inside its allocation (ray.init), as it does on the local profile.
    """
    if job_options(executor).launch != "ray":
        return render_sbatch
    if getattr(executor, "container_image", None):
        return render_ray_sbatch
    if (plan.nodes or 1) > 1:
        from nemotron_core.execution.backends.ray_slurm import render_ray_plain_sbatch

        return render_ray_plain_sbatch
    return render_sbatch


def render_job_script(executor, plan, job_dir: Path, *, ref_tag: str | None = None, flow_run_id: str | None = None,
                      content_key: str | None = None) -> str:
    """What `--dry-run` shows for a Slurm profile: the exact sbatch text submit() would use."""
    from nemotron_core.execution.executors import with_plan_env
    from nemotron_core.execution.packaging import ships_code

    executor = with_plan_env(executor, plan)
    paths = job_paths(executor, job_dir)
    name = job_name(plan.recipe)
    comment = make_comment(flow_run_id=flow_run_id, content_key=content_key, tag=ref_tag or Path(job_dir).name)
    render = renderer(executor, plan)
    return render(executor, plan, paths, name=name, comment=comment, ship_code=ships_code(executor.packager))


# --------------------------------------------------------------------------- state reading


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


def _status(state: JobState, exit_code, signal, *, reason=None, restarts=0, raw=None) -> JobStatus:
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

    def poll(self, job_ids, *, max_age: float = 1.0) -> dict[str, JobStatus]:
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
        task = job.get("array_task_id")
        if isinstance(task, int) and 0 <= task < 4_000_000_000:  # NO_VAL (0xfffffffe) = not a task
            key = f"{array_id}_{task}"
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
_SHELLS: dict[str, SlurmShell] = {}
_POLLERS_LOCK = threading.Lock()


def shell_for(cluster: dict[str, Any]) -> SlurmShell:
    """One shell (one SSH connection) per cluster per process."""
    shell = SlurmShell(cluster)
    with _POLLERS_LOCK:
        return _SHELLS.setdefault(shell.key, shell)


def close_shells() -> None:
    """Forget every cluster shell and poller of this process, closing SSH connections."""
    with _POLLERS_LOCK:
        for shell in _SHELLS.values():
            if shell._ssh is not None:
                from nemotron_core.execution.ssh import close

                close(shell._ssh)
                shell._ssh = None
        _SHELLS.clear()
        _POLLERS.clear()


def poller_for(cluster: dict[str, Any]) -> SlurmPoller:
    shell = shell_for(cluster)
    with _POLLERS_LOCK:
        if shell.key not in _POLLERS:
            _POLLERS[shell.key] = SlurmPoller(shell)
        return _POLLERS[shell.key]


# --------------------------------------------------------------------------- backend


class SlurmBackend:
    name = "slurm"

    def cluster_info(self, executor, paths: JobPaths) -> dict[str, Any]:
        shell = SlurmShell.for_executor(executor)
        info = dict(shell.cluster)
        info.update({"host_job_dir": paths.host, "job_name": None})
        if info.get("tunnel") == "ssh":
            info["remote_job_dir"] = job_options(executor).remote_job_dir
        return info

    def submit(self, executor, plan, ref: JobRef, secrets_path: Path | None) -> JobRef:
        from nemotron_core.execution.packaging import ships_code

        paths = job_paths(executor, ref.job_dir)
        name = job_name(plan.recipe)
        ref.cluster = {**self.cluster_info(executor, paths), "job_name": name}
        shell = shell_for(ref.cluster)
        shell.preflight()
        image = executor.container_image or ""
        if image.endswith(".sqsh") and shell.run(["test", "-f", image]).returncode != 0:
            raise SlurmError(f"container image {image} does not exist on the cluster: create it with "
                             f"`nemotron kit squash <image> --run <profile>`")
        ship = ships_code(executor.packager)
        comment = make_comment(flow_run_id=ref.flow_run_id, content_key=ref.content_key, tag=ref.tag)
        render = renderer(executor, plan)
        script = render(executor, plan, paths, name=name, comment=comment, ship_code=ship)
        self._ship(shell, executor, paths, ship)
        self._mount_points(shell, executor, paths)
        (paths.local / "sbatch.sh").write_text(script, encoding="utf-8")
        remote_secrets = f"{paths.host}/{SECRETS_FILE}"
        try:
            if secrets_path is not None:
                shell.put(secrets_path, remote_secrets, private=True)
            for name_ in ("train.yaml", "job.yaml", "sbatch.sh"):
                if (paths.local / name_).is_file():
                    shell.put(paths.local / name_, f"{paths.host}/{name_}")
            sbatch_path = f"{paths.host}/sbatch.sh"
            ref.save()  # id still None: a crash from here on is recovered by comment (recover_id)
            out = shell.run(["sbatch", "--parsable", "--requeue", sbatch_path], timeout=120,
                            hide=job_options(executor).secret_names)
            if out.returncode != 0:
                raise SlurmError(f"sbatch {sbatch_path} failed: {' '.join(out.stderr.split()) or out.stdout.strip()}")
        except BaseException:
            if secrets_path is not None and not shell.local_fs():  # no job will read the cluster's copy
                shell.run(["rm", "-f", remote_secrets])
            raise
        ref.id = out.stdout.strip().split(";")[0]
        ref.save()
        poller_for(ref.cluster).watch(ref.id, ref.tag, name)
        return ref

    def _ship(self, shell: SlurmShell, executor, paths: JobPaths, ship: bool) -> None:
        """Package the code into <job dir>/code (or link this checkout there when nothing is shipped)."""
        code_dir = Path(paths.local) / "code"
        if not ship:
            if shell.local_fs() and not code_dir.exists():
                code_dir.symlink_to(job_options(executor).code_root, target_is_directory=True)
            return
        import tarfile

        archive = Path(executor.packager.package(Path(job_options(executor).code_root), str(paths.local), "code"))
        if shell.local_fs() and paths.host == str(paths.local):
            code_dir.mkdir(parents=True, exist_ok=True)
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

    def _mount_points(self, shell: SlurmShell, executor, paths: JobPaths) -> None:
        """Targets under /nemo_run (`${auto_mount:}` → /nemo_run/mounts/<name>) exist in the job dir mounted there."""
        from nemotron_core.execution.backends.sbatch_script import RUNDIR

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
        return poller_for(ref.cluster).status(ref.id, ref.tag, name=ref.cluster.get("job_name"), max_age=max_age)

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
        """`scontrol requeue`; with start_now, lift the 121 s BeginTime Slurm sets (slurm.md gotcha 10)."""
        shell = shell_for(ref.cluster)
        out = shell.run(["scontrol", "requeue", str(ref.id)])
        if out.returncode != 0:
            raise SlurmError(f"scontrol requeue {ref.id} failed: {out.stderr.strip()}")
        poller_for(ref.cluster).forget(ref.id)
        poller_for(ref.cluster).watch(ref.id, ref.tag)
        if not start_now:
            return
        # While the job is still COMPLETING, an update is accepted but the requeue then sets
        # BeginTime = end + 121 s over it: wait for PENDING, update, and check it took.
        import datetime as _dt

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
        files += sorted(shell.glob(host, f"log-{name}_{ref.id}_*.out"),
                        key=lambda p: int(re.search(r"_(\d+)\.out$", p)[1]) if re.search(r"_(\d+)\.out$", p) else 0)
        if not files and ref.id and (Path(host) / "ray" / "logs").is_dir():
            files = sorted(str(p) for p in (Path(host) / "ray" / "logs").glob("ray-job*.log"))
        return files

    def read(self, ref: JobRef, path: str, offset: int) -> bytes:
        return shell_for(ref.cluster).read_from(path, offset)


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
