"""`nemotron evaluate MODEL_ARTIFACT[:VERSION]` and `nemotron nano3 model eval REF`, as functions.

    evaluate_model("nano3-rl-model:v2", profile=None, config="tiny", overrides=["heldout.splits=[test]"])

1. resolve REF in the artifact registry (env.toml [artifacts]) to one model version;
2. run stage3_eval/eval.py with `model_path` pinned to that version and the current pretrain /
   RL data versions pinned, through pipeline/run.py:run_stage with the table's EVAL stage
   (content key from recipe source + resolved config + image + pinned input versions; local /
   Ray / Slurm from the profile), exactly as the Prefect eval task of nano3-full and the nightly eval do;
3. register the output as nano3-eval with lineage to the model version (and the data versions);
   an eval with the same content key already registered is a cache hit: nothing runs;
4. print the comparison table over the latest eval of each model artifact (pretrain, SFT, RL).

`dry_run=True` stops after the cache check of step 2 and prints that plan instead.
`print_comparison(registry)` is step 4 alone. Both return/print; the CLI maps errors (one line,
exit 2) as for every command.
"""

from __future__ import annotations

from collections.abc import Sequence


def evaluate_model(ref: str, *, profile: str | None = None, config: str = "tiny", overrides: Sequence[str] = (),
                   dry_run: bool = False) -> int:
    from nemotron_core.artifacts import open_registry
    from nemotron_core.errors import ArtifactError
    from nemotron_core.profiles import load_env
    from nemotron_cli.recipe_run import PrintReporter
    from pipeline.run import StageRequest, prepare_job, published_output, run_stage
    from pipeline.stages import EVAL, STAGES
    from recipes.nano3.evaluation.compare import MODEL_NAME, print_comparison

    env = load_env()
    request = StageRequest(profile=env.profile(profile).name if profile else "local", config=config,
                           overrides=list(overrides))
    registry = open_registry(env.section("artifacts"))
    version = registry.resolve(ref)
    if not MODEL_NAME.search(version.name):
        raise ArtifactError(f"{version.ref} is not a model artifact (expected nano3-pretrain-model, nano3-sft-model, "
                            f"nano3-rl-model or another NAME-model)")
    # the data it is scored on: the current versions, pinned (as the nightly eval flow does)
    inputs = {"model": version.ref, **{slot: registry.resolve(STAGES[str(inp.upstream)].output).ref
                                        for slot, inp in EVAL.inputs.items() if slot != "model"}}
    job = prepare_job(EVAL, request, inputs)  # reads only: the job dir is named, not created
    cached = published_output(job)
    if dry_run:
        _print_plan(version.ref, inputs, job, cached, config=config, profile=request.profile)
        return 0
    if cached:
        print(f"{version.ref}: already evaluated as {cached} (same recipe, config and inputs: cache hit)", flush=True)
    else:
        print(f"{version.ref}: evaluating on {inputs['pretrain_data']} + {inputs['rl_data']} "
              f"(config {config}, profile {request.profile}) ...", flush=True)
        run_stage(EVAL, request, inputs, PrintReporter())  # prints "eval: registered nano3-eval:vN (lineage: ...)"
    print_comparison(registry)
    return 0


def _print_plan(model_ref: str, inputs: dict[str, str], job, cached: str | None, *, config: str, profile: str) -> None:
    """--dry-run: what would be evaluated and where its result would go; nothing runs or is registered."""
    from recipes.nano3.evaluation.compare import EVAL_ARTIFACT

    print(f"{model_ref}: would be evaluated on {inputs['pretrain_data']} + {inputs['rl_data']} "
          f"(config {config}, profile {profile})")
    print(f"  content key {job.key[:16]}")
    if cached:
        print(f"  cache hit: {cached} already holds this result; nothing would run")
    else:
        print(f"  would run {job.spec.name} with output in {job.output_dir}, job dir {job.job_dir}, "
              f"and register {EVAL_ARTIFACT} (lineage: {', '.join(inputs.values())})")
    print("dry run: nothing ran, nothing written or registered")
