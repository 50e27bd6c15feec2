"""`nemotron nano3 ...`: the nano3 recipe commands and their help panels."""

from __future__ import annotations

import typer

from nemotron_cli.dry_run import honours_dry_run
from nemotron_cli.recipe_typer import RecipeMeta, RecipeTyper

STAGES = "Training Stages"
DATA = "Data"
MODEL = "Model"

PRETRAIN = RecipeMeta("nano3/pretrain", "recipes/nano3/stage0_pretrain/train.py", 7,
                      inputs={"nano3-pretrain-data": "tokenized bin/idx blend + tokenizer"},
                      outputs={"nano3-pretrain-model": "HF safetensors checkpoint"}, artifact_subdir="model")
SFT = RecipeMeta("nano3/sft", "recipes/nano3/stage1_sft/train.py", 7,
                 inputs={"nano3-sft-data": "packed Parquet splits", "nano3-pretrain-model": "base model"},
                 outputs={"nano3-sft-model": "HF safetensors checkpoint"}, artifact_subdir="model")
RL = RecipeMeta("nano3/rl", "recipes/nano3/stage2_rl/train.py", 8,
                inputs={"nano3-rl-data": "JSONL prompts + answers", "nano3-sft-model": "policy and reference"},
                outputs={"nano3-rl-model": "HF safetensors checkpoint"}, artifact_subdir="model")
EVAL = RecipeMeta("nano3/eval", "recipes/nano3/stage3_eval/eval.py", 8,
                  inputs={"nano3-*-model": "any model artifact version"},
                  outputs={"nano3-eval": "metrics JSON"})
DATA_PREP = {
    "pretrain": RecipeMeta("nano3/data/prep/pretrain", "recipes/nano3/stage0_pretrain/data_prep.py", 6,
                           outputs={"nano3-pretrain-data": "bin/idx shards, blend.json, tokenizer"}),
    "sft": RecipeMeta("nano3/data/prep/sft", "recipes/nano3/stage1_sft/data_prep.py", 6,
                      outputs={"nano3-sft-data": "packed Parquet splits"}),
    "rl": RecipeMeta("nano3/data/prep/rl", "recipes/nano3/stage2_rl/data_prep.py", 6,
                     outputs={"nano3-rl-data": "JSONL prompts + manifest"}),
}

app = RecipeTyper(name="nano3", help="Nemotron nano3: data prep → pretrain → SFT → RL → eval.",
                  no_args_is_help=True, rich_markup_mode="rich")
data_app = RecipeTyper(name="data", help="Prepare or import the datasets the stages train on.", no_args_is_help=True)
prep_app = RecipeTyper(name="prep", help="Build a dataset artifact from the synthetic world or your files.",
                       no_args_is_help=True)
model_app = RecipeTyper(name="model", help="Import or evaluate model artifacts.", no_args_is_help=True)


def _run(meta: RecipeMeta, ctx: typer.Context) -> None:
    from nemotron_cli.context import split_dotlist
    from nemotron_cli.recipe_run import run_recipe

    code = run_recipe(meta, ctx.obj, split_dotlist(ctx.args))
    raise typer.Exit(code)


@app.recipe(PRETRAIN, name="pretrain", panel=STAGES, help="Pretrain the decoder on the tokenized blend (torchrun).")
def pretrain(ctx: typer.Context) -> None:
    _run(PRETRAIN, ctx)


@app.recipe(SFT, name="sft", panel=STAGES, help="Supervised fine-tuning on chat data, loss on assistant tokens (torchrun).")
def sft(ctx: typer.Context) -> None:
    _run(SFT, ctx)


@app.recipe(RL, name="rl", panel=STAGES, help="GRPO reinforcement learning with verifiable rewards (Ray).")
def rl(ctx: typer.Context) -> None:
    _run(RL, ctx)


@app.recipe(EVAL, name="eval", panel=STAGES, help="Evaluate a model artifact: perplexity, exact match, reward, lm-eval.")
def eval_(ctx: typer.Context) -> None:
    from nemotron_cli.context import split_dotlist
    from nemotron_cli.recipe_run import run_recipe

    g = ctx.obj
    code = run_recipe(EVAL, g, split_dotlist(ctx.args))
    if code == 0 and g.attached and not g.dry_run:  # registered: the table now has this version's row
        from nemotron_core.artifacts import open_registry
        from nemotron_core.profiles import load_env

        from recipes.nano3.evaluation.compare import print_comparison

        print_comparison(open_registry(load_env().section("artifacts")))
    raise typer.Exit(code)


@app.command(name="pipe", rich_help_panel=STAGES,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@honours_dry_run  # run_pipe prints the plan (flows.plan) and submits nothing
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


def _prep_command(kind: str) -> None:
    meta = DATA_PREP[kind]

    @prep_app.recipe(meta, name=kind, panel=DATA, help=f"Prepare {kind} data → {next(iter(meta.outputs))} (Ray).")
    def command(ctx: typer.Context) -> None:
        _run(meta, ctx)


for _kind in DATA_PREP:
    _prep_command(_kind)


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
    from nemotron_core.errors import NotBuiltError

    if not EVAL.script_path.is_file():
        raise NotBuiltError(f"'{EVAL.name}' is not built yet: {EVAL.script} does not exist (issue #{EVAL.issue})")
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
