"""Greedy answers to held-out questions, checked like the RL reward.

- `world_qa`: the synthetic world's held-out questions (rebuilt from the pretrain data's
  world.json) in chat form -> `exact_match` (and per task); the held-out skill items in
  completion form ("3 + 4 =", what a base model saw in pretraining) -> `completion_exact_match`.
- `rl_prompts`: the RL data's held-out prompts (their token ids as the RL trainer uses them)
  scored by rl/reward.py -> `rl_reward`, `rl_accuracy`, `rl_format`.

Held-out items are never in any stage's training data (common/world.py). Each returns
(metrics, samples); samples are {"kind", "id", "task", "reference", "response", "correct"}.
Each calls `progress(answered, of)` after every batch of questions, for whoever watches the eval.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from recipes.nano3.common.answers import answer_check
from recipes.nano3.common.chat import render
from recipes.nano3.common.errors import DataError
from recipes.nano3.common.world import World, WorldConfig
from recipes.nano3.rl.reward import score, summarize
from recipes.nano3.rl.sampling import completions


#: progress(answered, of): called after each batch of questions (eval.py writes it to progress.json).
Progress = Callable[[int, int], None]


def _quiet(done: int, of: int) -> None:
    pass


def load_world(pretrain_data: str | Path) -> World:
    path = Path(pretrain_data) / "world.json"
    if not path.is_file():
        raise DataError(f"config key 'pretrain_data': {path} is missing; is {pretrain_data} the pretrain data "
                        f"prep's output (nano3-pretrain-data)?")
    return World(WorldConfig.from_dict(json.loads(path.read_text())["config"], key="world.json config"))


def stop_ids(model) -> list[int]:
    eos = model.generation_config.eos_token_id
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


def greedy(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int, batch_size: int,
           answered: Callable[[int], None] = lambda n: None) -> list[list[int]]:
    """Greedy completions, one batch at a time (the same batches `completions` makes), `answered(k)` after each."""
    out: list[list[int]] = []
    for i in range(0, len(prompts), batch_size):
        out += completions(model, prompts[i:i + batch_size], n=1, greedy=True, max_new_tokens=max_new_tokens,
                           batch_size=batch_size, pad_id=tokenizer.pad_token_id, stop_ids=stop_ids(model))
        answered(len(out))
    return out


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _rate(flags: list[bool]) -> float:
    return sum(flags) / max(1, len(flags))


def world_qa(model, tokenizer, world: World, splits: list[str], *, progress: Progress = _quiet,
             **gen) -> tuple[dict, list[dict]]:
    items = [it for sp in splits for it in world.questions(sp)]
    if not items:
        raise DataError(f"config key 'heldout.splits': the world has no questions in {', '.join(splits)}")
    base = [it for sp in splits for it in world.completions(sp)]
    total = len(items) + len(base)
    chats = [render([{"role": "user", "content": it.question}], add_generation_prompt=True)[0] for it in items]
    done = greedy(model, tokenizer, _encode(tokenizer, chats), answered=lambda k: progress(k, total), **gen)
    texts = tokenizer.batch_decode(done, skip_special_tokens=False)
    ok = [answer_check(t, it.answer) for t, it in zip(texts, items)]
    tasks = sorted({it.kind for it in items})
    metrics = {"exact_match": _rate(ok), "exact_match_n": len(items),
               "exact_match_by_task": {k: _rate([c for c, it in zip(ok, items) if it.kind == k]) for k in tasks}}
    samples = [{"kind": "qa", "id": it.key, "task": it.kind, "reference": it.answer, "response": t, "correct": c}
               for it, t, c in zip(items, texts, ok)]

    if base:
        done = greedy(model, tokenizer, _encode(tokenizer, [it.prompt for it in base]),
                      answered=lambda k: progress(len(items) + k, total), **gen)
        texts = tokenizer.batch_decode(done, skip_special_tokens=False)
        ok = [answer_check(t, it.answer) for t, it in zip(texts, base)]
        metrics.update(completion_exact_match=_rate(ok), completion_exact_match_n=len(base))
        samples += [{"kind": "completion", "id": it.key, "task": it.kind, "reference": it.answer, "response": t,
                     "correct": c} for it, t, c in zip(base, texts, ok)]
    return metrics, samples


def rl_prompts(model, tokenizer, rows: list[dict], *, format_reward: float, progress: Progress = _quiet,
               **gen) -> tuple[dict, list[dict]]:
    done = greedy(model, tokenizer, [r["prompt_ids"] for r in rows], answered=lambda k: progress(k, len(rows)), **gen)
    texts = tokenizer.batch_decode(done, skip_special_tokens=False)
    scores = [score(t, r["reference"], format_reward) for t, r in zip(texts, rows)]
    stats = summarize(scores, [len(c) for c in done])
    metrics = {"rl_reward": stats["reward"], "rl_accuracy": stats["accuracy"], "rl_format": stats["format"],
               "rl_response_length": stats["response_length"], "rl_n": len(rows)}
    samples = [{"kind": "rl", "id": r["id"], "task": r.get("task"), "reference": r["reference"], "response": t,
                "correct": s.correct, "reward": s.reward} for r, t, s in zip(rows, texts, scores)]
    return metrics, samples
