# /// script
# [tool.runspec]
# schema = "1"
# name = "nano3/data/prep/rl"
# image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
# setup = "Needs the nemotron-flows package installed (scripts/setup)."
#
# [tool.runspec.run]
# launch = "ray"
# cmd = "python {script} --config {config}"
#
# [tool.runspec.config]
# dir = "./config/data_prep"
# default = "default"
# format = "omegaconf"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 0
# ///
"""Nano3 stage 2 data prep: prompts with verifiable reference answers for RL (and eval).

    python data_prep.py --config config/data_prep/tiny.yaml output_dir=/path/out \\
        tokenizer_path=/path/to/pretrain-data/tokenizer [key=value ...]
    nemotron nano3 data prep rl                # the same, through the toolkit

`tokenizer_path` is the pretrain data's tokenizer (in the configs:
`${art:nano3-pretrain-data,path}/tokenizer`, resolved by the toolkit). When a
world.json sits beside it, the `world` settings must match it.

Inputs (`sources`): the synthetic world's questions (for train, the train questions kept
for RL, `world.rl_share`: SFT never saw them, so the SFT model has not memorized them;
held-out items, never seen in any training data, for valid/test) and/or user prompts
(JSONL / Parquet / HF folder with `prompt` and `answer` fields) by fsspec URI. The
work is small, so it runs in this process (on the Ray head when launched as a RayJob).

Output (output_dir; the caller registers it as artifact `nano3-rl-data` once
RESULT.json exists; this script calls no registry):

  {train,valid,test}.jsonl   one prompt per line:
      id          stable id (world item key, or <source>:<hash of the prompt>)
      source      source name;  task: world item kind (arith, capital, ...) or "user"
      messages    [{"role": "user", "content": question}]
      prompt      the chat-templated text, ending with "<|im_start|>assistant\\n"
      prompt_ids  its token ids
      reference   the reference answer: reward = common.answers.answer_check(response, reference)
      weight      sampling weight: source weight x world.tasks weight, spread over the prompts
                  (a split's weights sum to 1; e.g. random.choices(rows, weights=[r["weight"] ...]))
  manifest.json              files, counts per split/source/task, fields, tokenizer, answer checker
  tokenizer/                 a copy of the tokenizer used (with the chat template)
  RESULT.json                stats, inputs, config digest (written last, only on success)

Same inputs and config -> byte-identical files.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from pathlib import Path

from recipes.nano3.common import config, outputs, prep, readers, splits
from recipes.nano3.common.chat import render
from recipes.nano3.common.cli import run_main
from recipes.nano3.common.errors import DataError
from recipes.nano3.common.progress import Counter

NAME, ARTIFACT = "nano3/data/prep/rl", "nano3-rl-data"
ANSWER_CHECK = "recipes.nano3.common.answers:answer_check"

DEFAULTS = prep.defaults(  # + output_dir, resume (nothing to resume: one quick step), seed (prompt order), ...
    tokenizer_path="???",  # the pretrain data's tokenizer folder (or a tokenizer.json)
    max_prompt_tokens=128,  # longer prompts are dropped (counted)
    splits={"valid": 0.05, "test": 0.05},  # held-out fraction of user prompts (synthetic: see world)
)
SYNTHETIC_KEYS = {"max_prompts": None}  # cap per split (null: every question of the world)
FILE_KEYS = {"prompt_key": "prompt", "answer_key": "answer"}


def main(argv: list[str]) -> None:
    t0 = time.time()
    p = prep.open_prep(argv, script=Path(__file__), defaults=DEFAULTS, synthetic=SYNTHETIC_KEYS, files=FILE_KEYS,
                       fields=("prompt_key", "answer_key"), allowed=("jsonl", "parquet", "hf"))  # nothing written
    cfg, out, world, sources, inputs, tok = p.cfg, p.out, p.world, p.sources, p.inputs, p.tokenizer
    on_error = readers.OnError(cfg["on_error"])
    max_tokens = config.positive_int(cfg, "max_prompt_tokens")
    p.start()

    # ---- 1. prompts per source and split ---------------------------------------------------
    records: dict[str, list[dict]] = {sp: [] for sp in splits.SPLITS}
    for name, src in sources.items():
        if src["type"] == "synthetic":
            for sp in splits.SPLITS:
                items = world.rl_questions() if sp == "train" else world.questions(sp)
                random.Random(f"rl:{cfg['seed']}:{name}:{sp}").shuffle(items)
                items = items[: src["max_prompts"]] if src["max_prompts"] else items
                records[sp] += [{"id": it.key, "source": name, "task": it.kind, "question": it.question,
                                 "reference": it.answer} for it in items]
        else:
            for sp, rec in user_prompts(src, inputs[name], cfg["splits"], on_error):
                records[sp].append(rec)

    # ---- 2. chat template + token ids; drop prompts that are too long ------------------------
    dropped = {sp: 0 for sp in splits.SPLITS}
    track = Counter(out, sum(len(rows) for rows in records.values()), "rows")  # progress.json: rows done/total
    for sp, rows in records.items():
        texts = [render([{"role": "user", "content": r["question"]}], add_generation_prompt=True)[0] for r in rows]
        encoded = tok.encode_batch(texts, add_special_tokens=False)
        kept = []
        for r, text, enc in zip(rows, texts, encoded):
            if len(enc.ids) > max_tokens:
                dropped[sp] += 1
                continue
            kept.append({"id": r["id"], "source": r["source"], "task": r["task"],
                         "messages": [{"role": "user", "content": r.pop("question")}], "prompt": text,
                         "prompt_ids": enc.ids, "reference": r["reference"]})
        records[sp] = kept
        add_weights(kept, {n: s["weight"] for n, s in sources.items()}, world.cfg.tasks)
        track.finish(len(rows))
    for name in sources:
        if not any(r["source"] == name for rows in records.values() for r in rows):
            raise DataError(f"source '{name}': no usable prompts ({on_error.skipped} skipped, "
                            f"{sum(dropped.values())} too long); check sources.{name} and its input")
    if not records["train"]:
        raise DataError("no training prompts; check the sources and max_prompt_tokens")

    # ---- 3. JSONL + manifest, then RESULT.json (last) ---------------------------------------
    for sp, rows in records.items():
        outputs.write_jsonl(out / f"{sp}.jsonl", rows)
    counts = {sp: {"prompts": len(rows), "dropped_too_long": dropped[sp], "by_source": tally(rows, "source"),
                   "by_task": tally(rows, "task")} for sp, rows in records.items()}
    outputs.write_json(out / "manifest.json", {
        "format": "jsonl", "files": {sp: f"{sp}.jsonl" for sp in splits.SPLITS}, "counts": counts,
        "fields": ["id", "source", "task", "messages", "prompt", "prompt_ids", "reference", "weight"],
        "answer_check": ANSWER_CHECK, "tokenizer": "tokenizer", "world_digest": world.digest,
        "sha256": {sp: outputs.sha256_file(out / f"{sp}.jsonl") for sp in splits.SPLITS},
    })
    stats = {"prompts": {sp: c["prompts"] for sp, c in counts.items()}, "dropped_too_long": dropped,
             "skipped": on_error.skipped, "skipped_examples": on_error.examples, "vocab_size": tok.get_vocab_size()}
    outputs.finish(out, outputs.result_record(
        name=NAME, artifact=ARTIFACT, cfg=cfg, inputs=inputs, stats=stats,
        files={"splits": {sp: f"{sp}.jsonl" for sp in splits.SPLITS}, "manifest": "manifest.json",
               "tokenizer": "tokenizer"}))
    outputs.print_summary({"prompts": stats["prompts"], "skipped": on_error.skipped, "dropped_too_long": dropped,
                           "wall_s": round(time.time() - t0, 3)})


def user_prompts(src: dict, info: dict, fractions: dict, on_error: readers.OnError):
    """(split, record) for each usable user prompt; bad records go to on_error."""
    pkey, akey = src["prompt_key"], src["answer_key"]
    for loc, rec in readers.read_all(src, info, on_error, (pkey, akey)):
        prompt, answer = rec.get(pkey), rec.get(akey)
        if not isinstance(prompt, str) or not prompt.strip():
            on_error.bad(loc, f"field '{pkey}' is missing, empty or not a string")
            continue
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
            on_error.bad(loc, f"field '{akey}' is missing, empty or not a string/number")
            continue
        rid = f"{src['name']}:{hashlib.sha256(prompt.encode()).hexdigest()[:16]}"
        sp = splits.split_of(prompt, fractions["valid"], fractions["test"], salt="prompt")
        yield sp, {"id": rid, "source": src["name"], "task": "user", "question": prompt, "reference": str(answer)}


def add_weights(rows: list[dict], weights: dict[str, float], task_weights: dict[str, float]) -> None:
    """weight = source share (source weights over the sources present) x task share (world.tasks over
    the tasks present in that source; user prompts are one task) / prompts of that source and task."""
    n = tally(rows, "source")
    total = sum(weights[s] for s in n)
    per_task: dict[tuple[str, str], int] = {}
    for r in rows:
        per_task[r["source"], r["task"]] = per_task.get((r["source"], r["task"]), 0) + 1
    for r in rows:
        tasks = [t for (s, t) in per_task if s == r["source"]]
        task_total = sum(task_weights.get(t, 1.0) for t in tasks)
        share = weights[r["source"]] / total * task_weights.get(r["task"], 1.0) / task_total
        r["weight"] = share / per_task[r["source"], r["task"]]


def tally(rows: list[dict], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return dict(sorted(out.items()))


if __name__ == "__main__":
    sys.exit(run_main(main))
