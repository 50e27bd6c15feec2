"""THE stage table of the nano3 pipeline: one typed, frozen record per stage.

Every reader derives what it needs from `STAGES` and nothing else:
- the flow (flows/nano3_full.py) submits each stage with its inputs bound to the refs of `Input.upstream`;
- the dry-run plan (pipeline/plan.py) walks the same graph;
- the CLI (nemotron_cli/nano3.py) makes one command per stage at `command`, in `panel`, with `help`;
- the nightly eval (flows/nightly_eval.py) evaluates the outputs of EVAL's model upstreams;
- `run_stage` (pipeline/run.py) binds `Input.bind` into the recipe config and publishes `output`.

An input whose `upstream` is a tuple fans out: the stage runs once per upstream (the eval runs on the
pretrain, SFT and RL models). Bindings are Python format strings with `{ref}` the pinned input version
("nano3-pretrain-data:v3"): they reach the config as `${art:REF,path}` overrides, so job.yaml records them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from nemotron_core.errors import ConfigError, NotBuiltError, did_you_mean
from nemotron_core.paths import PACKAGE_ROOT

#: CLI help panels.
TRAINING = "Training Stages"
DATA = "Data"


@dataclass(frozen=True)
class Input:
    upstream: str | tuple[str, ...]  # the stage whose output binds here (a tuple: one run per upstream)
    bind: str  # config override, e.g. "data_path=${{art:{ref},path}}"
    what: str = ""  # for the CLI help

    @property
    def upstreams(self) -> tuple[str, ...]:
        return self.upstream if isinstance(self.upstream, tuple) else (self.upstream,)


@dataclass(frozen=True)
class Stage:
    name: str  # the flow's stage name (and Prefect task name with _ -> -)
    script: str  # relative to the checkout
    output: str | None = None  # artifact name (None: a recipe that publishes nothing)
    output_subdir: str = ""  # the part of output_dir that is the artifact ("" = all of it)
    inputs: Mapping[str, Input] = field(default_factory=dict, hash=False)  # slot (task parameter) -> Input
    help: str = ""
    output_what: str = ""  # what the artifact holds, for the CLI help
    command: tuple[str, ...] = ()  # CLI path under `nemotron nano3`, e.g. ("data", "prep", "pretrain")
    panel: str = TRAINING

    @property
    def script_path(self) -> Path:
        return PACKAGE_ROOT / self.script

    def bindings(self, refs: Mapping[str, str]) -> list[str]:
        """The config overrides that pin the given inputs (slot -> "name:vN"); unbound slots keep the config's."""
        return [inp.bind.format(ref=refs[slot]) for slot, inp in self.inputs.items() if slot in refs]

    def runs(self) -> list[tuple[str | None, dict[str, str]]]:
        """(fan-out key, {slot: upstream stage}) per run of this stage in the pipeline: one, or one per
        upstream of its fan-out input (the key names that upstream)."""
        fan = next((slot for slot, inp in self.inputs.items() if len(inp.upstreams) > 1), None)
        fixed = {slot: inp.upstreams[0] for slot, inp in self.inputs.items() if slot != fan}
        if fan is None:
            return [(None, fixed)]
        return [(up, {**fixed, fan: up}) for up in self.inputs[fan].upstreams]

    def upstream_stages(self) -> set[str]:
        return {up for inp in self.inputs.values() for up in inp.upstreams}


_ART = "${{art:{ref},path}}"

DATA_PRETRAIN = Stage(
    "data_pretrain", "recipes/nano3/stage0_pretrain/data_prep.py", output="nano3-pretrain-data",
    help="Prepare pretrain data → nano3-pretrain-data (Ray).", output_what="bin/idx shards, blend.json, tokenizer",
    command=("data", "prep", "pretrain"), panel=DATA)
DATA_SFT = Stage(
    "data_sft", "recipes/nano3/stage1_sft/data_prep.py", output="nano3-sft-data",
    inputs={"pretrain_data": Input("data_pretrain", f"tokenizer_path={_ART}/tokenizer", "its tokenizer")},
    help="Prepare sft data → nano3-sft-data (Ray).", output_what="packed Parquet splits",
    command=("data", "prep", "sft"), panel=DATA)
DATA_RL = Stage(
    "data_rl", "recipes/nano3/stage2_rl/data_prep.py", output="nano3-rl-data",
    inputs={"pretrain_data": Input("data_pretrain", f"tokenizer_path={_ART}/tokenizer", "its tokenizer")},
    help="Prepare rl data → nano3-rl-data (Ray).", output_what="JSONL prompts + manifest",
    command=("data", "prep", "rl"), panel=DATA)
PRETRAIN = Stage(
    "pretrain", "recipes/nano3/stage0_pretrain/train.py", output="nano3-pretrain-model", output_subdir="model",
    inputs={"data": Input("data_pretrain", f"data_path={_ART}", "tokenized bin/idx blend + tokenizer")},
    help="Pretrain the decoder on the tokenized blend (torchrun).", output_what="HF safetensors checkpoint",
    command=("pretrain",))
SFT = Stage(
    "sft", "recipes/nano3/stage1_sft/train.py", output="nano3-sft-model", output_subdir="model",
    inputs={"data": Input("data_sft", f"data_path={_ART}", "packed Parquet splits"),
            "base_model": Input("pretrain", f"base_model={_ART}", "base model")},
    help="Supervised fine-tuning on chat data, loss on assistant tokens (torchrun).",
    output_what="HF safetensors checkpoint", command=("sft",))
RL = Stage(
    "rl", "recipes/nano3/stage2_rl/train.py", output="nano3-rl-model", output_subdir="model",
    inputs={"data": Input("data_rl", f"data_path={_ART}", "JSONL prompts + answers"),
            "base_model": Input("sft", f"base_model={_ART}", "policy and reference")},
    help="GRPO reinforcement learning with verifiable rewards (Ray).", output_what="HF safetensors checkpoint",
    command=("rl",))
EVAL = Stage(
    "eval", "recipes/nano3/stage3_eval/eval.py", output="nano3-eval",
    inputs={"model": Input(("pretrain", "sft", "rl"), f"model_path={_ART}", "the model version evaluated"),
            "pretrain_data": Input("data_pretrain", f"pretrain_data={_ART}", "valid split, held-out world"),
            "rl_data": Input("data_rl", f"rl_data={_ART}", "held-out prompts with references")},
    help="Evaluate a model artifact: perplexity, exact match, reward, lm-eval.", output_what="metrics JSON",
    command=("eval",))

#: Pipeline order: every stage after the stages it consumes.
STAGES: dict[str, Stage] = {s.name: s for s in (DATA_PRETRAIN, DATA_SFT, DATA_RL, PRETRAIN, SFT, RL, EVAL)}
#: The model artifacts the evals (nano3-full's last step, the nightly eval) score.
MODEL_STAGES: tuple[str, ...] = EVAL.inputs["model"].upstreams
MODEL_ARTIFACTS: tuple[str, ...] = tuple(STAGES[s].output or "" for s in MODEL_STAGES)


def check_stages(stages: list[str] | None) -> list[str]:
    """The selected stage names in pipeline order; an unknown or unbuilt stage fails in one line."""
    selected = list(stages) if stages else list(STAGES)
    for name in selected:
        if name not in STAGES:
            raise ConfigError(f"unknown stage '{name}'{did_you_mean(name, STAGES)}; stages: {', '.join(STAGES)}")
        if not STAGES[name].script_path.is_file():
            raise NotBuiltError(f"stage '{name}' is not built yet: {STAGES[name].script} does not exist; "
                                f"leave it out of `stages`")
    return [name for name in STAGES if name in selected]


def consumed(selected: list[str]) -> set[str]:
    """Stages whose output a selected stage consumes (all fan-out upstreams included)."""
    return {up for name in selected for up in STAGES[name].upstream_stages()}
