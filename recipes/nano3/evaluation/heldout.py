"""Greedy answers to held-out questions, checked like the RL reward.

- `world_qa`: the synthetic world's held-out questions (rebuilt from the pretrain data's
  world.json) in chat form -> `exact_match` (and per task); the held-out skill items in
  completion form ("3 + 4 =", what a base model saw in pretraining) -> `completion_exact_match`.
- `rl_prompts`: the RL data's held-out prompts (their token ids as the RL trainer uses them)
  scored by rl/reward.py -> `rl_reward`, `rl_accuracy`, `rl_format`.

Held-out items are never in any stage's training data (common/world.py). Each returns
(metrics, samples); samples are {"kind", "id", "task", "reference", "response", "correct"}.
"""

from __future__ import annotations

import json
from pathlib import Path

from recipes.nano3.common.answers import answer_check
from recipes.nano3.common.chat import render
from recipes.nano3.common.errors import DataError
from recipes.nano3.common.world import World, WorldConfig
from recipes.nano3.rl.reward import score, summarize
from recipes.nano3.rl.sampling import completions


def load_world(pretrain_data: str | Path) -> World:
    path = Path(pretrain_data) / "world.json"
    if not path.is_file():
        raise DataError(f"config key 'pretrain_data': {path} is missing; is {pretrain_data} the pretrain data "
                        f"prep's output (nano3-pretrain-data)?")
    return World(WorldConfig.from_dict(json.loads(path.read_text())["config"], key="world.json config"))


def stop_ids(model) -> list[int]:
    eos = model.generation_config.eos_token_id
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]


def greedy(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int, batch_size: int) -> list[list[int]]:
    return completions(model, prompts, n=1, greedy=True, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       pad_id=tokenizer.pad_token_id, stop_ids=stop_ids(model))


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _rate(flags: list[bool]) -> float:
    return sum(flags) / max(1, len(flags))


def world_qa(model, tokenizer, world: World, splits: list[str], **gen) -> tuple[dict, list[dict]]:
    items = [it for sp in splits for it in world.questions(sp)]
    if not items:
        raise DataError(f"config key 'heldout.splits': the world has no questions in {', '.join(splits)}")
    chats = [render([{"role": "user", "content": it.question}], add_generation_prompt=True)[0] for it in items]
    done = greedy(model, tokenizer, _encode(tokenizer, chats), **gen)
    texts = tokenizer.batch_decode(done, skip_special_tokens=False)
    ok = [answer_check(t, it.answer) for t, it in zip(texts, items)]
    tasks = sorted({it.kind for it in items})
    metrics = {"exact_match": _rate(ok), "exact_match_n": len(items),
               "exact_match_by_task": {k: _rate([c for c, it in zip(ok, items) if it.kind == k]) for k in tasks}}
    samples = [{"kind": "qa", "id": it.key, "task": it.kind, "reference": it.answer, "response": t, "correct": c}
               for it, t, c in zip(items, texts, ok)]

    base = [it for sp in splits for it in world.completions(sp)]
    if base:
        done = greedy(model, tokenizer, _encode(tokenizer, [it.prompt for it in base]), **gen)
        texts = tokenizer.batch_decode(done, skip_special_tokens=False)
        ok = [answer_check(t, it.answer) for t, it in zip(texts, base)]
        metrics.update(completion_exact_match=_rate(ok), completion_exact_match_n=len(base))
        samples += [{"kind": "completion", "id": it.key, "task": it.kind, "reference": it.answer, "response": t,
                     "correct": c} for it, t, c in zip(base, texts, ok)]
    return metrics, samples


def rl_prompts(model, tokenizer, rows: list[dict], *, format_reward: float, **gen) -> tuple[dict, list[dict]]:
    done = greedy(model, tokenizer, [r["prompt_ids"] for r in rows], **gen)
    texts = tokenizer.batch_decode(done, skip_special_tokens=False)
    scores = [score(t, r["reference"], format_reward) for t, r in zip(texts, rows)]
    stats = summarize(scores, [len(c) for c in done])
    metrics = {"rl_reward": stats["reward"], "rl_accuracy": stats["accuracy"], "rl_format": stats["format"],
               "rl_response_length": stats["response_length"], "rl_n": len(rows)}
    samples = [{"kind": "rl", "id": r["id"], "task": r.get("task"), "reference": r["reference"], "response": t,
                "correct": s.correct, "reward": s.reward} for r, t, s in zip(rows, texts, scores)]
    return metrics, samples
