"""`nemotron nano3 pipe`: the nano3-full flow from the command line.

Runs the same Prefect flow as `prefect deployment run nano3-full/...`, in this process
(against $PREFECT_API_URL when set, else a temporary local Prefect server). Overrides are
prefixed with their stage (`sft.train.lr=1e-4`), `-c` picks the config of every stage.
"""

from __future__ import annotations

from nemotron_core.cli.context import GlobalContext, split_dotlist
from nemotron_core.errors import ConfigError, NotBuiltError, did_you_mean


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
    from flows.nano3_full import STAGES

    overrides = stage_overrides(words, list(STAGES))
    selected = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    params = dict(profile=g.profile or "local", config=g.config or "tiny", overrides=overrides, stages=selected)
    if g.dry_run:
        from flows.plan import plan_pipeline, print_plan

        print_plan(plan_pipeline(**params, force=force))
        return 0
    if g.batch:
        raise NotBuiltError("'nano3 pipe --batch' is not built yet: it needs the nano3-full deployment (issue #10); "
                            "use --run")
    from flows.nano3_full import nano3_full

    result = nano3_full(**params, force=force)
    for stage, ref in result.items():
        print(f"{stage:14s} {ref}")
    return 0
