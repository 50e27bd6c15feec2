"""lm-eval harness on tasks the project ships: the held-out world questions, defined locally.

`write_tasks(world, splits, folder)` writes, for lm-eval's TaskManager(include_path=folder):

  nano3_qa.yaml + .jsonl     generate_until: {"question", "answer"}; greedy, stops at the end of the
                             turn; metric exact_match (case and punctuation ignored)
  nano3_qa_mc.yaml + .jsonl  multiple_choice: {"question", "choices", "label"}; 4 answers of the same
                             kind (the right one + 3 others, seeded by the item), each closed by
                             <|im_end|>; metric acc (log-likelihood ranking, works for a base model too)

`run(model, tokenizer, folder, ...)` evaluates both through lm-eval's HF model adapter (HFLM,
given the loaded model) with the model's chat template applied, fully offline: no Hub, no
dataset download (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set before lm-eval is imported;
HF_HOME is the state folder's). Returns {task: {metric: value}} (+ "<metric>_stderr").
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from nemotron_core.errors import ConfigError, did_you_mean

from recipes.nano3.common.chat import IM_END
from recipes.nano3.common.outputs import write_json, write_jsonl
from recipes.nano3.common.world import World

TASKS = ("nano3_qa", "nano3_qa_mc")


def _task(name: str, data: Path, **spec) -> dict:
    return {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", "doc_to_text": "{{question}}", **spec, "metadata": {"version": 1.0}}


def write_tasks(world: World, splits: list[str], folder: Path, *, max_gen_toks: int) -> list[str]:
    """The two task YAMLs (written as JSON, which YAML reads) and their JSONL data; returns the task names."""
    items = [it for sp in splits for it in world.questions(sp)]
    answers_by_kind: dict[str, list[str]] = {}
    for kind, all_items in world.items.items():
        answers_by_kind[kind] = sorted({it.answer for it in all_items})
    qa, mc = [], []
    for it in items:
        qa.append({"id": it.key, "question": it.question, "answer": it.answer})
        rng = random.Random(f"nano3_qa_mc:{it.key}")
        others = [a for a in answers_by_kind[it.kind] if a != it.answer]
        choices = rng.sample(others, min(3, len(others))) + [it.answer]
        rng.shuffle(choices)
        mc.append({"id": it.key, "question": it.question, "choices": [f"{c}{IM_END}" for c in choices],
                   "label": choices.index(it.answer)})
    write_jsonl(folder / "nano3_qa.jsonl", qa)
    write_jsonl(folder / "nano3_qa_mc.jsonl", mc)
    write_json(folder / "nano3_qa.yaml", _task(
        "nano3_qa", folder / "nano3_qa.jsonl", output_type="generate_until", doc_to_target="{{answer}}",
        generation_kwargs={"until": [IM_END, "<|endoftext|>", "\n"], "max_gen_toks": max_gen_toks, "do_sample": False},
        filter_list=[{"name": "strip", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]}],
        metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True, "ignore_case": True,
                      "ignore_punctuation": True}]))
    write_json(folder / "nano3_qa_mc.yaml", _task(
        "nano3_qa_mc", folder / "nano3_qa_mc.jsonl", output_type="multiple_choice", doc_to_choice="{{choices}}",
        doc_to_target="label", target_delimiter="",
        metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]))
    return list(TASKS)


def offline_env() -> None:
    """Before lm_eval / datasets are imported: never reach the Hub."""
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # TQDM_DISABLE: eval.py, before tqdm loads


def run(model, tokenizer, folder: Path, tasks: list[str], *, batch_size: int, seed: int) -> dict:
    offline_env()
    import logging

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # lm-eval's own task index is read only when a task not written here is asked for (slow to build).
    manager = TaskManager(include_path=str(folder), include_defaults=any(t not in TASKS for t in tasks))
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ConfigError(f"config key 'tasks': {unknown[0]!r} is not an lm-eval task known here"
                          f"{did_you_mean(unknown[0], manager.all_tasks)}; this project's own: "
                          f"perplexity, heldout_qa, rl_reward, {', '.join(TASKS)}")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    out = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, apply_chat_template=True, log_samples=False,
                          bootstrap_iters=1000, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                          fewshot_random_seed=seed, verbosity="WARNING")
    write_json(folder.parent / "results.json", json.loads(json.dumps(out["results"], default=str)))
    metrics = {}
    for task in tasks:
        raw = out["results"][task]
        values = {}
        for key, value in raw.items():
            metric, _, _filter = key.partition(",")
            if isinstance(value, (int, float)) and metric not in ("alias", "sample_len"):
                values[metric] = float(value)
        metrics[task] = values
    return metrics
