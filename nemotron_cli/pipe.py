"""`nemotron nano3 pipe`: the nano3-full flow from the command line.

`--run PROFILE` (or no option) runs the nano3-full flow in this process (against
$PREFECT_API_URL when set, else a temporary local Prefect server) and waits, showing one row per
stage run as it goes (nemotron_cli/progress.py; Ctrl-C cancels the run and its jobs).
`--batch PROFILE` submits a flow run of the deployment `nano3-full/PROFILE` (what
`prefect deployment run nano3-full/PROFILE` does, with this command line's config,
overrides and stages as parameters) to the server at $PREFECT_API_URL and returns at once, like
sbatch: a worker of that deployment's pool runs it. It prints the run's id, its UI page and the
command that shows it as it goes, `nemotron nano3 watch ID` (nemotron_cli/watch.py). Overrides are prefixed with their
stage (`sft.train.lr=1e-4`), `-c` picks the config of every stage.
"""

from __future__ import annotations

from nemotron_cli.context import GlobalContext, split_dotlist
from nemotron_core.errors import ConfigError, NemotronError, did_you_mean


def stage_overrides(words: list[str], stage_names) -> dict[str, list[str]]:
    """['sft.train.lr=1', '~rl.x'] -> {'sft': ['train.lr=1'], 'rl': ['~x']}."""
    out: dict[str, list[str]] = {}
    for word in split_dotlist(words):
        prefix = word[0] if word[0] in "+~" else ""
        body = word[len(prefix):]
        stage, dot, rest = body.partition(".")
        if not dot or stage not in stage_names:
            raise ConfigError(f"override '{word}': start it with a stage name{did_you_mean(stage, stage_names)} "
                              f"({', '.join(stage_names)}), e.g. sft.train.lr=1e-4")
        out.setdefault(stage, []).append(prefix + rest)
    return out


def run_pipe(g: GlobalContext, words: list[str], *, stages: str | None, force: bool) -> int:
    from pipeline.stages import STAGES

    overrides = stage_overrides(words, list(STAGES))
    selected = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    params = dict(profile=g.profile or "local", config=g.config or "tiny", overrides=overrides, stages=selected)
    if g.dry_run:
        from pipeline.plan import plan_pipeline, print_plan

        print_plan(plan_pipeline(**params, force=force))
        return 0
    if g.batch:
        return submit_to_deployment(g.batch, {**params, "force": force})
    from flows.nano3_full import nano3_full
    from nemotron_cli.progress import watch_in_process

    result = watch_in_process(lambda: nano3_full(**params, force=force))
    for stage, ref in result.items():
        print(f"{stage:14s} {ref}")
    return 0


def submit_to_deployment(profile: str, params: dict) -> int:
    """Create a flow run of `nano3-full/<profile>` with `params`; print its id and UI link."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        raise NemotronError("'nano3 pipe --batch' submits to a Prefect server: set PREFECT_API_URL "
                            "(e.g. eval \"$(scripts/prefect-server env)\"), or use --run to run the flow here")
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from nemotron_cli.watch import FLOW_NAME, check_server, watch_command

    name = f"{FLOW_NAME}/{profile}"
    with get_client(sync_client=True) as client:
        check_server(client, os.environ["PREFECT_API_URL"])
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            known = sorted(f"{FLOW_NAME}/{d.name}" for d in client.read_deployments()
                           if client.read_flow(d.flow_id).name == FLOW_NAME)
            raise NemotronError(f"no deployment {name} on {os.environ['PREFECT_API_URL']}; deployments of "
                                f"{FLOW_NAME}: {', '.join(known) or 'none'} (register them: prefect --no-prompt "
                                f"deploy --all --prefect-file deployments/prefect.yaml)") from None
    run = run_deployment(name, parameters=params, timeout=0)
    ui = os.environ.get("PREFECT_UI_URL") or os.environ["PREFECT_API_URL"].removesuffix("/api")
    print(f"submitted flow run {run.name} ({run.id}) of {name}", flush=True)
    print(f"ui:    {ui}/runs/flow-run/{run.id}", flush=True)
    print(f"watch: {watch_command(str(run.id))}", flush=True)
    return 0
