"""`nemotron nano3 ...`: the nano3 stage commands (one per row of pipeline/stages.py) and their panels."""

from __future__ import annotations

import typer

from nemotron_cli.dry_run import honours_dry_run
from nemotron_cli.recipe_typer import RecipeTyper
from pipeline.stages import DATA, EVAL, STAGES, TRAINING, Stage

STAGES_PANEL = TRAINING
MODEL = "Model"

app = RecipeTyper(name="nano3", help="Nemotron nano3: data prep → pretrain → SFT → RL → eval.",
                  no_args_is_help=True, rich_markup_mode="rich")
data_app = RecipeTyper(name="data", help="Prepare or import the datasets the stages train on.", no_args_is_help=True)
prep_app = RecipeTyper(name="prep", help="Build a dataset artifact from the synthetic world or your files.",
                       no_args_is_help=True)
model_app = RecipeTyper(name="model", help="Import or evaluate model artifacts.", no_args_is_help=True)
#: Where a stage's `command` path starts: ("pretrain",) → `nano3 pretrain`, ("data", "prep", X) → `nano3 data prep X`.
_GROUPS = {(): app, ("data", "prep"): prep_app}


def _run(stage: Stage, ctx: typer.Context, extra: tuple[str, ...] = ()) -> None:
    from nemotron_cli.context import split_dotlist
    from nemotron_cli.recipe_run import run_recipe

    g = ctx.obj
    code = run_recipe(stage, g, [*split_dotlist(ctx.args), *extra])
    if stage is EVAL and code == 0 and g.attached and not g.dry_run:  # registered: the table has its row now
        from nemotron_core.artifacts import open_registry
        from nemotron_core.profiles import load_env
        from recipes.nano3.evaluation.compare import print_comparison

        print_comparison(open_registry(load_env().section("artifacts")))
    raise typer.Exit(code)


def _stage_command(stage: Stage) -> None:
    *group, name = stage.command
    register = _GROUPS[tuple(group)].recipe(stage, name=name, panel=stage.panel, help=stage.help)
    if stage is EVAL:
        @register
        def eval_command(ctx: typer.Context, task: list[str] = typer.Option(
                None, "-t", "--task", metavar="TASK",
                help="Run only this evaluation (repeatable): perplexity, heldout_qa, rl_reward, nano3_qa, "
                     "nano3_qa_mc, or an lm-eval task name. Default: all of this project's own.")) -> None:
            from nemotron_cli.eval_tasks import tasks_override

            _run(stage, ctx, tasks_override(task or []))
        return

    @register
    def command(ctx: typer.Context) -> None:
        _run(stage, ctx)


for _stage in STAGES.values():
    _stage_command(_stage)


@app.command(name="pipe", rich_help_panel=STAGES_PANEL,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@honours_dry_run  # run_pipe prints the plan (pipeline/plan.py) and submits nothing
def pipe(
    ctx: typer.Context,
    stages: str = typer.Option(None, "--stages", help="Comma-separated subset, e.g. sft,rl,eval (default: all)."),
    force: bool = typer.Option(False, "--force", help="Rerun the selected stages even when cached."),
) -> None:
    """Run the nano3-full flow: data prep → pretrain → SFT → RL → eval, cached by content.

    Overrides name their stage: [bold]sft.train.lr=1e-4[/], [bold]+pretrain.x=1[/], [bold]~rl.y[/].
    With --dry-run, prints for each stage whether it would be skipped (cached), re-attached or submitted.
    """
    from nemotron_cli.pipe import run_pipe

    raise typer.Exit(run_pipe(ctx.obj, ctx.args, stages=stages, force=force))


@app.command(name="watch", rich_help_panel=STAGES_PANEL)
def watch(flow_run: str = typer.Argument(None, metavar="FLOW_RUN",
                                         help="Flow run id or name (default: the newest nano3-full run).")) -> None:
    """Follow a nano3-full flow run to its end, e.g. one [bold]pipe --batch[/] submitted (needs PREFECT_API_URL).

    One row per stage: state, job, elapsed, progress (step, loss and ETA; shards; rows; eval tasks).
    Ctrl-C asks whether to cancel the run or stop watching. Exit 0 when the run completed, 1 when not.
    """
    from nemotron_cli.watch import watch_flow_run

    raise typer.Exit(watch_flow_run(flow_run))


@model_app.command(name="eval", rich_help_panel=MODEL,
                   context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@honours_dry_run
def model_eval(ctx: typer.Context, ref: str = typer.Argument(..., metavar="MODEL_ARTIFACT[:VERSION]")) -> None:
    """Evaluate a registered model version (cached per version) and print the comparison table.

    With --dry-run, prints the version, the data it would be scored on and whether the result is cached.
    """
    raise typer.Exit(evaluate_ref(ctx, ref))


def evaluate_ref(ctx: typer.Context, ref: str) -> int:
    from nemotron_cli.context import split_dotlist
    from nemotron_cli.evaluate import evaluate_model

    g = ctx.obj
    return evaluate_model(ref, profile=g.profile, config=g.config or "tiny", overrides=split_dotlist(ctx.args),
                          dry_run=g.dry_run)


from nemotron_cli.import_cmd import data_import_app, model_import_app  # noqa: E402

data_app.add_typer(prep_app, rich_help_panel=DATA)
data_app.add_typer(data_import_app, name="import", rich_help_panel=DATA)
model_app.add_typer(model_import_app, name="import", rich_help_panel=MODEL)
app.add_typer(data_app, rich_help_panel=DATA)
app.add_typer(model_app, rich_help_panel=MODEL)
