"""`--force-squash` and `--stage` on a recipe command (the seed's globals).

--force-squash   a Slurm profile with `squash = true` runs its image from an enroot squash file
                 (execution/squash.py); this imports the file again before the job is submitted
                 (under --dry-run: prints the import commands). Any other profile: a one-line error.
--stage          the job's files, without submitting: job.yaml, train.yaml, the launch script and
                 the 0600 secrets.env in the job dir, and the line that runs it by hand (its output is
                 not registered: a later run of the stage with the same content publishes it).
                 Local profiles; Slurm profiles: the code, job.yaml, train.yaml, sbatch.sh and the
                 secrets file go to the job dir on the cluster (here or through the SSH tunnel), and the
                 printed line is the `sbatch` of that script. Docker and cloud profiles refuse it in
                 one line (--dry-run prints what they would send). Under --dry-run it does nothing
                 beyond the dry run.
"""

from __future__ import annotations

import shlex

from nemotron_core.errors import NemotronError
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec


def force_squash(profile: Profile, spec: Runspec, *, dry_run: bool) -> None:
    from nemotron_core.execution.profile_keys import image as profile_image
    from nemotron_core.execution.squash import ensure_squashed_image

    if profile.executor != "slurm" or not profile.get("squash"):
        raise NemotronError(f"--force-squash: profile '{profile.name}' runs no enroot squash file (a Slurm profile "
                            f"with squash = true does); drop --force-squash")
    image = profile_image(profile, spec)
    if not image or image.endswith(".sqsh"):
        raise NemotronError(f"--force-squash: profile '{profile.name}' names {'no image' if not image else image}; "
                            f"a squash file is made from a registry image (container_image or the runspec's image)")
    if dry_run:
        print("# --force-squash: the import runs again before the job is submitted")
    ensure_squashed_image(profile, image, force=True, dry_run=dry_run)


def stage_job(job, *, attached: bool) -> int:  # job: pipeline.run.PreparedJob
    """Write the job's files into its job dir and print how to run it; submit nothing."""
    from nemotron_core.config import extract_train_config, save_configs
    from nemotron_core.execution import create_executor, job_options
    from nemotron_core.execution.backends.local import local_command
    from nemotron_core.execution.backends.wrapper import write_launch_script
    from nemotron_core.execution.secrets_file import collect_secrets, write_secrets_file
    from nemotron_core.paths import PACKAGE_ROOT
    from pipeline.run import plan_of

    if job.profile.executor == "slurm":
        return _stage_slurm(job, attached=attached)
    if job.profile.executor != "local":
        raise NemotronError(f"--stage: profile '{job.profile.name}' ({job.profile.executor}): staging is done for "
                            f"local and Slurm profiles; here --dry-run prints what would be sent")
    executor = create_executor(job.profile, job.spec, attached=attached, job_config=job.job_config)
    plan = plan_of(job)
    train = extract_train_config(job.job_config, for_remote=False, code_root=PACKAGE_ROOT)
    save_configs(job.job_config, train, job.job_dir)
    opts = job_options(executor)
    launch = write_launch_script(job.job_dir, local_command(executor, plan), env=dict(executor.env_vars or {}),
                                 startup=opts.startup, title=plan.recipe, code_root=opts.code_root)
    secrets = write_secrets_file(job.job_dir, collect_secrets(extra_names=opts.secret_names))
    files = ["job.yaml", "train.yaml", launch.name] + ([secrets.name] if secrets else [])
    print(f"staged {job.job_dir}: {', '.join(files)} (nothing submitted)")
    print(f"run it by hand: cd {shlex.quote(str(job.job_dir))} && bash {launch.name}")
    print(f"its output goes to {job.output_dir} (not registered: a run through nemotron registers its output)")
    return 0


def _stage_slurm(job, *, attached: bool) -> int:
    """The Slurm submit up to `sbatch` (SlurmBackend.stage): files on the cluster, no ref saved."""
    import os

    from nemotron_core.config import extract_train_config, save_configs
    from nemotron_core.execution import JobRef, create_executor, job_options, job_paths
    from nemotron_core.execution.backends.slurm import SlurmBackend, shell_for
    from nemotron_core.execution.executors import with_plan_env
    from nemotron_core.execution.secrets_file import collect_secrets, write_secrets_file
    from nemotron_core.paths import PACKAGE_ROOT
    from pipeline.run import clone_repos, plan_of

    plan = plan_of(job)
    executor = with_plan_env(create_executor(job.profile, job.spec, attached=attached, job_config=job.job_config),
                             plan)
    paths = job_paths(executor, job.job_dir)
    clone_repos(job, executor)
    train = extract_train_config(job.job_config, for_remote=paths.in_job != str(paths.local), code_root=PACKAGE_ROOT,
                                 remote_root=paths.code)
    save_configs(job.job_config, train, job.job_dir)
    job.output_dir.mkdir(parents=True, exist_ok=True)  # as a submit does (pipeline.run)
    secrets = write_secrets_file(job.job_dir, collect_secrets(extra_names=job_options(executor).secret_names))
    ref = JobRef(backend="slurm", job_dir=str(paths.local), name=plan.recipe, content_key=job.key)
    try:
        script = SlurmBackend().stage(executor, plan, ref, secrets)
    except BaseException:
        if secrets is not None:  # nothing will run: the secrets do not stay behind
            secrets.unlink(missing_ok=True)
        raise
    shell = shell_for(ref.cluster)
    if secrets is not None and not shell.local_fs():  # the cluster's 0600 copy is the one the job reads
        secrets.unlink(missing_ok=True)
    command = f"sbatch {shlex.quote(script)}"
    if not shell.local_fs():
        c = ref.cluster
        port = f"-p {int(c['port'])} " if c.get("port") and int(c["port"]) != 22 else ""
        target = f"{c['user']}@{c['host']}" if c.get("user") else str(c["host"])
        command = f"ssh {port}{shlex.quote(target)} {shlex.quote(command)}"
    elif c_conf := ref.cluster.get("slurm_conf"):
        if c_conf != os.environ.get("SLURM_CONF"):
            command = f"SLURM_CONF={shlex.quote(str(c_conf))} {command}"
    where = ref.cluster.get("host_job_dir") or str(paths.local)
    print(f"staged {where}: code, job.yaml, train.yaml, sbatch.sh{', secrets.env' if secrets else ''} "
          f"(nothing submitted)")
    print(f"run it by hand: {command}")
    print(f"its output goes to {job.output_dir} (not registered: a run through nemotron registers its output)")
    return 0
