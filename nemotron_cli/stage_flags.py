"""`--force-squash` and `--stage` on a recipe command (the seed's globals).

--force-squash   a Slurm profile with `squash = true` runs its image from an enroot squash file
                 (execution/squash.py); this imports the file again before the job is submitted
                 (under --dry-run: prints the import commands). Any other profile: a one-line error.
--stage          the job's files, without submitting: job.yaml, train.yaml, the launch script and
                 the 0600 secrets.env in the job dir, and the line that runs it by hand (its output is
                 not registered: a later run of the stage with the same content publishes it).
                 Local profiles; on a cluster profile it is refused in one line (--dry-run prints the
                 sbatch text there). Under --dry-run it does nothing beyond the dry run.
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

    if job.profile.executor != "local":
        raise NemotronError(f"--stage: profile '{job.profile.name}' ({job.profile.executor}): staging is done for "
                            f"local profiles; for a cluster, --dry-run prints the job script")
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
