"""The sbatch script of a Slurm job, rendered here with every value quoted.

nemo-run's `SlurmBatchRequest.materialize()` writes `export KEY=value` raw and upper-cases
KEY, puts the log paths on the `srun` line unquoted, traces the whole script (`set -evx`,
so a startup command using `$HF_TOKEN` prints the token), and, without a container,
replaces every `/nemo_run` in the text with the job dir (mangling any path that contains
it, e.g. NEMORUN_HOME=<state>/nemo_run). So we render the same layout ourselves, from the
same executor fields (slurm_executor.py: its SBATCH_FLAGS, additional_parameters, container image
and mounts, srun_args, retries) and the torchrun line nemo-run's Torchrun launcher writes:

    #SBATCH --flag=<quoted>           sorted, one per field; a value with a newline is refused
    set -ev                           -v echoes lines as written (no expansion, so no values)
    export NAME=<quoted>              names checked, case kept
    <source secrets.env untraced>
    <setup lines>                     PATH for a container-free job + startup_commands (code)
    srun --output <quoted dir>/log-... <--chdir | --container-*> ... <command>
    exit code handling, requeue for retries (as nemo-run's template)

Code by design, emitted as written: `startup_commands` and the recipe's `cmd` template
(after it is split into words and requoted). Everything else is data (shellsafe.py).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from nemotron_core.errors import ProfileError
from nemotron_core.execution.shellsafe import check_command, check_mount, check_value, check_words, export_lines

RUNDIR = "/nemo_run"  # where a container sees the job dir (nemo-run's RUNDIR_NAME)
_SPECIAL = "/$nemo_run"  # nemo-run's mount prefix for "the job dir on the host"
_LAUNCHER_WORD = re.compile(r"[A-Za-z0-9_.:=$/,+-]+\Z")  # torchrun's own args: ports, $head_node_ip, $SLURM_NODEID
_RESTART = "${SLURM_RESTART_COUNT:-0}"


def _flag(key: str, value: Any, profile: str | None) -> str:
    key = key.replace("_", "-")
    if value is True:
        return f"#SBATCH --{key}"
    return f"#SBATCH --{key}={shlex.quote(check_value(value, profile=profile, key=key.replace('-', '_')))}"


def sbatch_flags(ex: Any, *, name: str, folder: str, profile: str | None) -> list[str]:
    """`#SBATCH` lines from the executor's sbatch fields (nemo-run's SBATCH_FLAGS) and additional_parameters."""
    params = dict(ex.sbatch_fields())
    params["job_name"] = name
    params["output"] = f"{folder}/sbatch_{name}_%j.out"
    if not ex.stderr_to_stdout:
        params["error"] = f"{folder}/sbatch_{name}_%j.err"
    extra = ex.additional_parameters or {}
    if not isinstance(extra, dict):
        raise _error(profile, f"additional_parameters = {extra!r} must be a table of sbatch options")
    for k in extra:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", str(k)):
            raise _error(profile, f"additional_parameters key {k!r} is not an sbatch option name")
    params.update(extra)
    return [_flag(k, params[k], profile) for k in sorted(params) if params[k] is not False]


def _error(profile: str | None, text: str) -> Exception:
    return ProfileError(f"profile '{profile}': {text}" if profile else text)


def container_flags(ex: Any, *, host_job_dir: str, profile: str | None) -> list[str]:
    """`--chdir <job>/code` without a container; pyxis flags with one (the job dir mounted at /nemo_run)."""
    if not ex.container_image:
        return ["--chdir", f"{host_job_dir}/code"]
    mounts = [check_mount(m, profile=profile) for m in (ex.container_mounts or [])]
    mounts = [host_job_dir + m[len(_SPECIAL):] if m.startswith(_SPECIAL) else m for m in mounts]
    # The job dir first: pyxis mounts in order, and `${auto_mount:}` targets lie under /nemo_run/mounts.
    mounts.insert(0, check_mount(f"{host_job_dir}:{RUNDIR}", profile=profile, key="job dir"))
    flags = ["--container-image", check_value(ex.container_image, profile=profile, key="container_image"),
             "--container-mounts", ",".join(mounts), "--container-workdir", f"{RUNDIR}/code"]
    if ex.container_env:
        flags += ["--container-env", ",".join(check_words(ex.container_env, profile=profile, key="container_env"))]
    return flags


def torchrun_command(launcher: list[str], script_words: list[str]) -> str:
    """`torchrun <launcher args> <script> <args>`: the launcher's own words are ours and hold
    `$head_node_ip`/`$SLURM_NODEID`/`$SLURM_JOB_ID`, which must expand; the script and its args are quoted."""
    words = [w if _LAUNCHER_WORD.match(w) else shlex.quote(w) for w in launcher]
    return " ".join([*words, shlex.join(check_command(script_words))])


def render(ex: Any, *, name: str, host_job_dir: str, command: str, env: dict[str, str], setup: list[str],
           profile: str | None) -> str:
    """The script text. `command` is already a quoted shell command line; `setup` lines are code."""
    folder = host_job_dir
    srun = ["srun", "--output", None, *(["--error", None] if not ex.stderr_to_stdout else []),
            *container_flags(ex, host_job_dir=host_job_dir, profile=profile), "--wait=60", "--kill-on-bad-exit=1",
            *check_words(ex.srun_args or [], profile=profile, key="srun_args")]
    quoted = []
    for i, word in enumerate(srun):
        if word is None:  # a log path: the folder quoted, the file name (ours) expands the restart count
            suffix = "out" if srun[i - 1] == "--output" else "err"
            quoted.append(f"{shlex.quote(folder)}/log-{name}_%j_{_RESTART}.{suffix}")
        else:
            quoted.append(shlex.quote(word))
    retries = int(ex.retries or 0)
    lines = [
        "#!/bin/bash",
        "#",
        "# Generated by nemotron (nemo-run's SlurmExecutor fields, every value quoted)",
        "# Run with: sbatch --parsable",
        "#",
        "",
        "# Parameters",
        *sbatch_flags(ex, name=name, folder=folder, profile=profile),
        "",
        "set -ev",
        "",
        "export PYTHONUNBUFFERED=1",
        "export SLURM_UNBUFFEREDIO=1",
        f"export TORCHX_MAX_RETRIES={retries}",
        "",
        "set +e",
        "",
        "# setup",
        "",
        'nodes=( $( scontrol show hostnames "$SLURM_JOB_NODELIST" ) )',
        'nodes_array=("${nodes[@]}")',
        "head_node=${nodes_array[0]}",
        'head_node_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address)',
        "",
        *export_lines(env, profile=profile),
        *setup,
        "",
        "# Command 1",
        "",
        f"{' '.join(quoted)} {command}",
        "",
        "exitcode=$?",
        "set -e",
        "",
        'echo "job exited with code $exitcode"',
        'if [ $exitcode -ne 0 ]; then',
        '    if [ "$TORCHX_MAX_RETRIES" -gt "${SLURM_RESTART_COUNT:-0}" ]; then',
        '        scontrol requeue "$SLURM_JOB_ID"',
        "    fi",
        "    exit $exitcode",
        "fi",
    ]
    return "\n".join(lines) + "\n"
