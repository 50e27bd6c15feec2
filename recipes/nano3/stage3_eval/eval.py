# /// script
# [tool.runspec]
# schema = "1"
# name = "nano3/eval"
# image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
# setup = "Needs the nemotron-flows package installed (scripts/setup)."
#
# [tool.runspec.run]
# launch = "direct"
# cmd = "python {script} --config {config}"
#
# [tool.runspec.config]
# dir = "./config"
# default = "default"
# format = "omegaconf"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 1
# ///
"""Nano3 stage 3: evaluate one model version (pretrain, SFT or RL) on held-out data.

    python eval.py --config config/tiny.yaml model_path=/path/to/model pretrain_data=/path/to/pretrain-data \\
        rl_data=/path/to/rl-data output_dir=/path/out
    nemotron nano3 eval -c tiny model_path='${art:nano3-rl-model,path}'   # the same through the toolkit
    nemotron evaluate nano3-rl-model:v2        # + registration (cache hit when already evaluated) + table

Metrics (all on data no stage trained on):
  perplexity              exp(mean token loss) on the pretrain data's valid split
  exact_match             greedy chat answers to the world's held-out questions (+ per task);
                          completion_exact_match: held-out skill items in completion form ("3 + 4 =")
  rl_reward, rl_accuracy  the RL data's held-out prompts, scored like the RL trainer (answer + format)
  lmeval_qa_exact_match,  lm-eval harness (HF model adapter, chat template) on the project's local tasks
  lmeval_qa_mc_acc        nano3_qa (generate) and nano3_qa_mc (multiple choice), offline
Config `tasks` (`nemotron nano3 eval -t TASK ...`) picks some: perplexity, heldout_qa, rl_reward,
nano3_qa, nano3_qa_mc, or any lm-eval harness task by name; [] runs all of this project's own.

Output (output_dir; the caller registers it as nano3-eval with lineage to the model version):
  results.json            model identity + metrics (see evaluation/report.py)
  samples.jsonl           every held-out question, the model's answer, whether it was right
  lm_eval/tasks/          the generated task YAMLs + JSONL;  lm_eval/results.json: lm-eval's raw results
  RESULT.json             name, artifact, config, inputs (model, data: paths + digests), metrics (last)

Exit codes: 0 done; 2 bad config, data or model path (one-line error, no RESULT.json).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval/datasets progress bars: read when tqdm is imported

from recipes.nano3.common import outputs
from recipes.nano3.common.progress import Counter
from recipes.nano3.evaluation import heldout, lmeval, report, settings
from recipes.nano3.evaluation.perplexity import perplexity
from recipes.nano3.rl.prompts import Prompts
from recipes.nano3.training import entry, runtime
from recipes.nano3.training import model as modellib
from recipes.nano3.training.result import describe_input

NAME, ARTIFACT = "nano3/eval", "nano3-eval"


def main(argv: list[str]) -> None:
    t0 = time.time()
    # 1. The config; the model; the data it is evaluated on (every path checked before any output).
    cfg = settings.load(argv, script=Path(__file__))
    out, pre_data, rl_data = Path(cfg["output_dir"]), Path(cfg["pretrain_data"]), Path(cfg["rl_data"])
    h, pp = cfg["heldout"], cfg["perplexity"]
    model, tokenizer = modellib.load(cfg["model_path"], "model_path")
    data_tokenizer = modellib.load_tokenizer(pre_data / "tokenizer", "pretrain_data")
    tokenizer = tokenizer or data_tokenizer
    modellib.check_same_tokenizer(tokenizer, data_tokenizer, f"model_path {cfg['model_path']} vs pretrain_data {pre_data}")
    tokenizer.padding_side = "left"
    world = heldout.load_world(pre_data)
    vocab = model.config.vocab_size
    rl_rows = [r for sp in h["splits"] for r in Prompts(rl_data, sp, vocab_size=vocab, key="rl_data").rows]
    entry.check_positions(model, pp["seq_length"], "perplexity.seq_length")

    rt = runtime.start(cfg["runtime"])
    model.to(rt.device)
    outputs.start(out)  # no RESULT.json until this run succeeds
    gen = {"max_new_tokens": h["max_new_tokens"], "batch_size": h["batch_size"]}

    # 2. Perplexity on the pretrain valid split.
    chosen = settings.selected_tasks(cfg)  # `tasks` (nano3 eval -t ...): [] = every own task
    track = Counter(out, len(chosen), "tasks")  # progress.json: tasks done, questions of the running one
    ppl, qa, rl, lm, qa_samples, rl_samples = {}, {}, {}, {}, [], []
    timing = {}
    if "perplexity" in chosen:
        track.begin("perplexity")
        t = time.time()
        ppl = perplexity(model, pre_data, rt=rt, seq_length=pp["seq_length"], micro=pp["micro_batch_size"],
                         batches=pp["batches"], seed=cfg["seed"])
        timing["perplexity_s"] = time.time() - t
        track.finish()
    model.eval()

    # 3. Held-out Q&A exact match (world questions) and RL reward (RL data prompts), greedy.
    t = time.time()
    if "heldout_qa" in chosen:
        track.begin("heldout_qa")
        qa, qa_samples = heldout.world_qa(model, tokenizer, world, h["splits"], progress=track.items, **gen)
        track.finish()
    if "rl_reward" in chosen:
        track.begin("rl_reward")
        rl, rl_samples = heldout.rl_prompts(model, tokenizer, rl_rows, format_reward=h["format_reward"],
                                            progress=track.items, **gen)
        track.finish()
    timing["heldout_s"] = time.time() - t

    # 4. lm-eval harness: the local tasks (HF model adapter, chat template, offline) and any named lm-eval task.
    lm_tasks = [name for name in chosen if name not in settings.OWN_TASKS[:3]]
    if lm_tasks:
        track.begin(lm_tasks[0] if len(lm_tasks) == 1 else "lm_eval")  # one harness call runs them all
        t = time.time()
        lmeval.write_tasks(world, h["splits"], out / "lm_eval" / "tasks", max_gen_toks=h["max_new_tokens"])
        lm = lmeval.run(model, tokenizer, out / "lm_eval" / "tasks", lm_tasks, batch_size=cfg["lm_eval"]["batch_size"],
                        seed=cfg["seed"])
        timing["lm_eval_s"] = time.time() - t
        track.finish(len(lm_tasks))

    # 5. results.json, samples.jsonl, then RESULT.json (last).
    metrics = report.flat_metrics(ppl, qa, rl, lm)
    model_input = describe_input(Path(cfg["model_path"]))
    identity = {"path": cfg["model_path"], **{k: model_input.get(k) for k in ("artifact", "name", "config_digest")}}
    outputs.write_jsonl(out / "samples.jsonl", qa_samples + rl_samples)
    outputs.write_json(out / "results.json", {
        "model": identity, "metrics": metrics, "exact_match_by_task": qa.get("exact_match_by_task", {}), "lm_eval": lm,
        "counts": {"perplexity_tokens": ppl.get("tokens", 0), "qa": qa.get("exact_match_n", 0),
                   "completion": qa.get("completion_exact_match_n", 0), "rl": rl.get("rl_n", 0)},
        "splits": h["splits"], "tasks": chosen})
    outputs.finish(out, {
        "name": NAME, "artifact": ARTIFACT, "config_digest": settings.base.digest(cfg),
        "config": {k: v for k, v in cfg.items() if k != "output_dir"}, "model": identity,
        "inputs": {"model": model_input, "pretrain_data": describe_input(pre_data), "rl_data": describe_input(rl_data)},
        "metrics": metrics, "runtime": rt.describe(),
        "outputs": {"results": "results.json", "samples": "samples.jsonl", "lm_eval": "lm_eval"}})
    timing["wall_s"] = time.time() - t0
    outputs.print_summary({**{k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
                           **{k: round(v, 2) for k, v in timing.items()}})


if __name__ == "__main__":
    sys.exit(entry.run(main))
