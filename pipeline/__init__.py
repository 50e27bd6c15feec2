"""The nano3 pipeline without Prefect: the stage table, one `run_stage`, the dry-run plan, retry rules.

Floors (imports point down only):

    nemotron_cli/                      the `nemotron` command line
    tasks/  flows/  deployments/       Prefect: caching, retries, logging, run reports around pipeline/
    pipeline/                          this package: stages.py (the one stage table), run.py
                                       (run_stage: prepare → published? → executor → submit/attach →
                                       wait → register), plan.py (the dry run), retry.py
    nemotron_core/                     the toolkit: runspec, config, profiles, execution, artifacts
    recipes/                           the job side (imports nemotron_core only)

Nothing here imports Prefect, `tasks`, `flows` or `nemotron_cli`.
"""
