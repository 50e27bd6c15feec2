"""The sbatch script of a job: from an executor (slurm_executor.SlurmJobExecutor + JobOptions) and a plan.

sbatch_script.py writes the text in nemo-run's layout with every value quoted; this module
prepares the executor copy for the job (job dir, name, comment, the state folder mounted),
rewrites this machine's paths to the job's, builds the torchrun command (the words nemo-run's
Torchrun launcher writes), and picks the renderer: plain, nemo-run's Ray container template (render_ray_sbatch),
or our container-free multi-node Ray cluster in front of the command (ray_slurm.py).
Nothing here submits or writes a file.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Callable

from nemotron_core.compat import nemo_run
from nemotron_core.execution.backends import ray_slurm, sbatch_script
from nemotron_core.execution.backends.slurm_shell import SlurmError
from nemotron_core.execution.backends.slurm_tags import job_name, make_comment
from nemotron_core.execution.code_root import pythonpath_line
from nemotron_core.execution.executors import with_plan_env
from nemotron_core.execution.options import JobPaths, SlurmExecutor, job_options, job_paths
from nemotron_core.execution.secrets_file import SECRETS_FILE, source_lines
from nemotron_core.execution.shellsafe import check_command, check_value, export_lines
from nemotron_core.launch import Plan
from nemotron_core.paths import PACKAGE_ROOT, state_dir

Renderer = Callable[..., str]  # (executor, plan, paths, *, name, comment, ship_code) -> the sbatch text


def remap_words(words: list[str], executor: SlurmExecutor, paths: JobPaths, *, ship_code: bool) -> list[str]:
    """Rewrite this machine's paths in a command line to the paths the job sees.

    The local job dir → the job's dir (first: it lies under the checkout); the checkout
    → the job's code dir (when code is shipped); this interpreter → the job's; the
    venv's torchrun → `torchrun` on the job's PATH.
    """
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


def _split_torchrun(plan: Plan) -> tuple[str, list[str]] | None:
    """(script, args) of a plan built by launch.plan_job for the torchrun launcher."""
    script = str(plan.script)
    if plan.launcher != "torchrun" or script not in plan.command:
        return None
    i = plan.command.index(script)
    return script, plan.command[i + 1:]


def _prepared(executor: SlurmExecutor, paths: JobPaths, *, comment: str) -> SlurmExecutor:
    """A copy of the executor set up for this job: its comment, the state folder mounted."""
    ex = executor.copy(comment=comment)
    if ex.container_image and not job_options(executor).remote_job_dir:
        # The job's exported caches/homes/TMPDIR (build_env_vars) point into this host's state
        # folder: the container sees it at the same path. (An SSH cluster's point under
        # remote_job_dir, which the profile's mounts must cover.)
        folder = str(state_dir())
        ex.container_mounts = [*(ex.container_mounts or []), f"{folder}:{folder}"]
    return ex


def _code_root(paths: JobPaths, *, ship_code: bool) -> str:
    """Where the job finds the project's code: the shipped code dir, else this checkout (same filesystem)."""
    return paths.code if ship_code else str(PACKAGE_ROOT)


def _setup_lines(ex: SlurmExecutor, paths: JobPaths, *, ship_code: bool) -> list[str]:
    """Secrets sourced untraced, the code root first on PYTHONPATH (code_root.py), then the executor's
    setup lines (PATH, startup_commands: code by design)."""
    secrets = f"{paths.host}/{SECRETS_FILE}"
    return [*source_lines(secrets, restore="-v"), pythonpath_line(_code_root(paths, ship_code=ship_code)),
            *(ex.setup_lines.splitlines() if ex.setup_lines else [])]


def render_sbatch(executor: SlurmExecutor, plan: Plan, paths: JobPaths, *, name: str, comment: str,
                  ship_code: bool) -> str:
    """The sbatch script for `plan` (sbatch_script.py: nemo-run's layout, values quoted); writes nothing."""
    profile = job_options(executor).profile
    ex = _prepared(executor, paths, comment=comment)
    env = dict(ex.env_vars or {})
    split = _split_torchrun(plan)
    if split and ex.launcher == "torchrun":
        script, args = split
        words = remap_words([script, *args], executor, paths, ship_code=ship_code)
        command = sbatch_script.torchrun_command(ex.torchrun_words(), words)
        # nemo-run's torchrun component adds LOGLEVEL (this environment's, else INFO) unless the env has it.
        env = {**({} if "LOGLEVEL" in env else {"LOGLEVEL": os.environ.get("LOGLEVEL", "INFO")}), **env}
    else:
        words = remap_words(plan.command, executor, paths, ship_code=ship_code)
        command = shlex.join(check_command(words))
    return sbatch_script.render(ex, name=name, host_job_dir=paths.host, command=command, env=env,
                                setup=_setup_lines(ex, paths, ship_code=ship_code), profile=profile)


def render_ray_sbatch(executor: SlurmExecutor, plan: Plan, paths: JobPaths, *, name: str, comment: str,
                      ship_code: bool) -> str:
    """The sbatch script of nemo-run's Slurm RayJob (head + workers, then the command on the head).

    Its template writes paths, image, mounts, account and partition unquoted in many places,
    so those must be plain words here (checked, else refused in one line); our env is exported
    quoted in the setup lines (nemo-run gets none), and the command travels in a variable:
    the template puts it inside double quotes, where `$(...)` would run.
    """
    nemo_run()
    from nemo_run.run.ray.slurm import SlurmRayRequest  # lazy: nemo_run.run.ray.slurm is a heavy import

    profile = job_options(executor).profile
    ex = _prepared(executor, paths, comment=comment)
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
    setup = "\n".join(["{ set +vx; } 2>/dev/null  # nemotron: startup lines are not traced",
                       *export_lines(env, profile=profile), *_setup_lines(ex, paths, ship_code=ship_code),
                       f"NEMOTRON_COMMAND={shlex.quote(command)}"])
    nr = ex.copy(env_vars={}, setup_lines=setup).to_nemo_run(name=name, job_dir=paths.host)
    req = SlurmRayRequest(name=name, cluster_dir=f"{paths.host}/ray", template_name=nr.ray_template, executor=nr,
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


def render_ray_plain_sbatch(executor: SlurmExecutor, plan: Plan, paths: JobPaths, *, name: str, comment: str,
                            ship_code: bool) -> str:
    """nemo-run's sbatch script for the command, with a Ray cluster started in front of it and
    the command's srun confined to the head node."""
    text = render_sbatch(executor, plan, paths, name=name, comment=comment, ship_code=ship_code)
    lines = text.splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.startswith("srun ")]
    if len(at) != 1:  # nemo-run's template changed: fail at render time, not on the cluster
        raise SlurmError(f"{plan.recipe}: expected one srun line in nemo-run's sbatch script, found {len(at)}")
    srun = lines[at[0]].replace("srun ", 'srun --overlap --nodes=1 --ntasks=1 -w "$ray_head" ', 1)
    cluster = ray_slurm.cluster_lines(executor, paths, code_root=_code_root(paths, ship_code=ship_code))
    return "".join([*lines[:at[0]], cluster, srun, *lines[at[0] + 1:]])


def renderer(executor: SlurmExecutor, plan: Plan) -> Renderer:
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
        return render_ray_plain_sbatch
    return render_sbatch


def render_job_script(executor: SlurmExecutor, plan: Plan, job_dir: Path, *, ref_tag: str | None = None,
                      flow_run_id: str | None = None,
                      content_key: str | None = None) -> str:
    """What `--dry-run` shows for a Slurm profile: the exact sbatch text submit() would use."""
    executor = with_plan_env(executor, plan)
    paths = job_paths(executor, job_dir)
    name = job_name(plan.recipe)
    comment = make_comment(flow_run_id=flow_run_id, content_key=content_key, tag=ref_tag or Path(job_dir).name)
    render = renderer(executor, plan)
    return render(executor, plan, paths, name=name, comment=comment, ship_code=executor.ships_code)
