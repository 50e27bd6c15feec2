# /// script
# [tool.runspec]
# schema = "1"
# name = "nano3/data/prep/pretrain"
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
"""Nano3 stage 0 data prep: corpus -> tokenizer + Megatron indexed datasets for pretraining.

    python data_prep.py --config config/data_prep/tiny.yaml output_dir=/path/out [key=value ...]
    nemotron nano3 data prep pretrain          # the same, through the toolkit (RayJob on Slurm)

Inputs (`sources`, mixed by `weight`): the built-in synthetic world (common/world.py:
arithmetic, sequences, facts about made-up countries and people; seeded) and/or user
text from JSONL / Parquet / text files by fsspec URI (local, s3://) or a local HF
datasets folder. Nothing is downloaded.

Steps:
  1. check the config and every input (missing file, unknown format, empty input: one-line
     error, exit 2) before any work;
  2. tokenizer: train a byte-level BPE on a sample of the corpus (or install
     `tokenizer.path`) into output_dir/tokenizer/;
  3. one Ray task per shard: read/generate documents, split them train/valid/test, tokenize,
     write one Megatron indexed dataset per split; a shard's marker is written last, so
     a rerun after a kill skips finished shards;
  4. blend.json, eval prompts, world.json, then RESULT.json (last, only on success).

Output (output_dir; the caller registers it as artifact `nano3-pretrain-data` once
RESULT.json exists; this script calls no registry):

  tokenizer/                      HF tokenizer folder (tokenizer.json, tokenizer_config.json,
                                  chat_template.jinja); ids <|endoftext|>=0 <|pad|>=1 <|im_start|>=2 <|im_end|>=3
  megatron/{train,valid,test}/<source>-<shard>.{bin,idx}
                                  megatron-core IndexedDataset per shard and split; one sequence per
                                  document, each document ends with <|endoftext|> (eod)
  blend.json                      {"splits": {split: {"paths": [relative prefixes], "weights": [...]}}, "dtype",
                                  "eod_id", "vocab_size", "sources": {...}}; common.blend.load_blend()
  eval/{valid,test}.jsonl         held-out completion prompts {"id","task","question","answer"}
                                  (text = question + " " + answer), never in the training text
  world.json                      the synthetic world (config, digest, tables)
  shards/<source>-<shard>.json    per-shard done markers with stats
  RESULT.json                     stats (documents, tokens per split and source), inputs, config digest

Same inputs and config -> byte-identical files (whatever `workers` is).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np

from recipes.nano3.common import config, indexed, outputs, prep, readers, splits
from recipes.nano3.common import stats as stats_
from recipes.nano3.common import tokenizer as toks
from recipes.nano3.common.blend import split_blend
from recipes.nano3.common.chat import EOS, render
from recipes.nano3.common.cli import run_main
from recipes.nano3.common.shards import done_stats, run_shards, shutdown_ray
from recipes.nano3.common.world import World, WorldConfig

NAME, ARTIFACT = "nano3/data/prep/pretrain", "nano3-pretrain-data"

DEFAULTS = prep.defaults(  # + output_dir, resume, seed (synthetic documents), on_error, world, sources
    workers=2,  # Ray tasks at a time (num_cpus of a local Ray head)
    num_shards=4,  # default shards per source
    splits={"valid": 0.01, "test": 0.01},  # fraction of documents held out
    tokenizer={
        "path": None,  # an existing tokenizer folder / tokenizer.json, or null to train BPE
        "vocab_size": 1024,
        "min_frequency": 2,
        "sample_documents": 5000,  # BPE training sample, shared across sources by weight
        "model_max_length": 4096,
    },
)
SYNTHETIC_KEYS = {"documents": 8000, "lines_per_document": 16}
FILE_KEYS = {"text_key": "text"}
ENCODE_BATCH = 512


def main(argv: list[str]) -> None:
    t0 = time.time()
    p = prep.open_prep(argv, script=Path(__file__), defaults=DEFAULTS, synthetic=SYNTHETIC_KEYS, files=FILE_KEYS,
                       fields=("text_key",))  # config and every input checked, nothing written yet
    cfg, out, resume, world, sources, inputs = p.cfg, p.out, p.resume, p.world, p.sources, p.inputs
    workers = config.positive_int(cfg, "workers")
    p.start()

    # ---- 1. tokenizer -----------------------------------------------------------------
    tok_json = make_tokenizer(cfg, sources, inputs, world, out, resume)
    tok = toks.from_json(tok_json)
    vocab_size = tok.get_vocab_size()

    # ---- 2. shards: generate/read, split, tokenize, write .bin/.idx (Ray) ------------------
    jobs = plan_jobs(cfg, sources, inputs, world, tok_json, vocab_size)
    timing: dict = {}
    stats = run_shards(build_shard, jobs, workers=workers, marker_dir=out / "shards", resume=resume,
                       shared=(tok_json, str(out)), timing=timing)
    shutdown_ray()
    per_source = stats_.by_source(sources, jobs, stats, ("documents", "tokens"), "documents")
    totals = stats_.totals(per_source, ("documents", "tokens"))

    # ---- 3. blend.json, eval prompts, world.json ----------------------------------------
    blend = make_blend(sources, jobs, stats, vocab_size, tok)
    outputs.write_json(out / "blend.json", blend)
    files = {"tokenizer": "tokenizer", "blend": "blend.json", "megatron": "megatron", "world": "world.json"}
    if any(s["type"] == "synthetic" for s in sources.values()):
        files["eval"] = "eval"
        for split in ("valid", "test"):
            rows = [{"id": it.key, "task": it.kind, "question": it.prompt, "answer": it.answer}
                    for it in world.completions(split)]
            outputs.write_jsonl(out / "eval" / f"{split}.jsonl", rows)
    outputs.write_json(out / "world.json", world.to_json())

    # ---- 4. RESULT.json (last) -------------------------------------------------------------
    outputs.finish(out, outputs.result_record(
        name=NAME, artifact=ARTIFACT, cfg=cfg, inputs=inputs,
        stats={**totals, "sources": per_source, "vocab_size": vocab_size, "shards": len(jobs)}, files=files))
    computed = set(timing["computed"])
    tokens = sum(sum(s["tokens"].values()) for j, s in zip(jobs, stats) if j["name"] in computed)
    outputs.print_summary({
        "documents": totals["documents"], "tokens": totals["tokens"], "skipped": totals["skipped"],
        "vocab_size": vocab_size,
        "shards": len(jobs), "shards_computed": len(computed), "workers": workers,
        "ray_init_s": round(timing["init_s"], 3), "shards_s": round(timing["run_s"], 3),
        "tokens_per_s": round(tokens / timing["run_s"]) if timing["run_s"] else None,
        "task_cpu_s": round(timing["task_cpu_s"], 3),
        "wall_s": round(time.time() - t0, 3)})


# ---- tokenizer ------------------------------------------------------------------------------
def make_tokenizer(cfg: dict, sources: dict, inputs: dict, world: World, out: Path, resume: bool) -> str:
    """Train (or install) the tokenizer into out/tokenizer once; return its JSON text."""
    tcfg = cfg["tokenizer"]
    folder = out / "tokenizer"
    job = {"name": "tokenizer", "digest": config.digest([tcfg, cfg["seed"], world.digest, sources,
                                                         {n: i["public"] for n, i in inputs.items()}])}
    if not resume or done_stats(job, out / "shards") is None or not (folder / "tokenizer.json").is_file():
        if tcfg["path"]:
            toks.install(tcfg["path"], folder, "tokenizer.path", tcfg["model_max_length"])
        else:
            corpus = tokenizer_corpus(cfg, sources, inputs, world)
            tok = toks.train_bpe(corpus, config.positive_int(cfg, "tokenizer.vocab_size"), tcfg["min_frequency"])
            toks.save(tok, folder, tcfg["model_max_length"])
        outputs.write_json(out / "shards" / "tokenizer.json", {"digest": job["digest"], "stats": {}})
    return toks.load(folder, "tokenizer.path")[1]


def tokenizer_corpus(cfg: dict, sources: dict, inputs: dict, world: World):
    """A deterministic sample of every source, sized by blend weight (+ chats for the chat tokens)."""
    total_w = sum(s["weight"] for s in sources.values())
    for name, src in sources.items():
        n = max(1, round(cfg["tokenizer"]["sample_documents"] * src["weight"] / total_w))
        if src["type"] == "synthetic":
            rng = random.Random(f"tokenizer:{cfg['seed']}:{name}")
            for _ in range(n):
                yield world.pretrain_document(rng, "train", src["lines_per_document"])
            for _ in range(max(1, n // 10)):
                yield render(world.conversation(rng, "train", multi_turn=0.5))[0]
            continue
        info, on_error = inputs[name], readers.OnError(cfg["on_error"])
        records = readers.read_all(src, info, on_error, (src["text_key"],))
        for _, text in zip(range(n), documents(records, src["text_key"], on_error)):
            yield text


def documents(records, key: str, on_error: readers.OnError, counts: dict | None = None):
    """The text of each record (a text line, or record[key]); bad records go to on_error."""
    for loc, rec in records:
        text = rec if isinstance(rec, str) else rec.get(key)
        if not isinstance(text, str):
            on_error.bad(loc, f"field '{key}' is missing or not a string")
            continue
        if not text.strip():
            if counts is not None:
                counts["empty"] += 1
            continue
        yield text


# ---- shards ---------------------------------------------------------------------------------
def plan_jobs(cfg, sources, inputs, world, tok_json, vocab_size) -> list[dict]:
    jobs = []
    tok_digest = config.digest(tok_json)
    eod = toks.from_json(tok_json).token_to_id(EOS)
    for name, src in sources.items():
        n = src["num_shards"]
        base = {"source": name, "type": src["type"], "num_shards": n, "tokenizer": tok_digest, "eod": eod,
                "dtype": indexed.token_dtype(vocab_size).name, "splits": cfg["splits"], "on_error": cfg["on_error"]}
        if src["type"] == "synthetic":
            per_split = splits.split_counts(src["documents"], cfg["splits"])
        else:
            info = inputs[name]
            pieces = readers.plan(info["fmt"], info["files"], n, src["storage_options"])
        for k in range(n):
            job = {**base, "name": f"{name}-{k:05d}", "shard": k}
            if src["type"] == "synthetic":
                job.update(world=world.cfg.to_dict(), seed=cfg["seed"], lines=src["lines_per_document"],
                           documents={sp: splits.share(per_split[sp], k, n) for sp in splits.SPLITS})
            else:
                job.update(fmt=inputs[name]["fmt"], pieces=pieces[k], text_key=src["text_key"],
                           storage_options=src["storage_options"], split=src["split"])
            job["digest"] = config.digest(job)
            jobs.append(job)
    return jobs


def build_shard(job: dict, tokenizer_json: str, out_dir: str) -> dict:
    """(Ray task) One shard: documents -> split -> tokens -> megatron/<split>/<name>.bin/.idx."""
    texts: dict[str, list[str]] = {sp: [] for sp in splits.SPLITS}
    on_error, counts = readers.OnError(job["on_error"]), {"empty": 0}
    if job["type"] == "synthetic":
        world = World(WorldConfig.from_dict(job["world"]))
        rng = random.Random(f"pretrain:{job['seed']}:{job['name']}")
        for sp in splits.SPLITS:
            texts[sp] = [world.pretrain_document(rng, sp, job["lines"]) for _ in range(job["documents"][sp])]
    else:
        src = {"storage_options": job["storage_options"], "split": job["split"]}
        records = readers.read(job["fmt"], job["pieces"], src, on_error, (job["text_key"],))
        for text in documents(records, job["text_key"], on_error, counts):
            texts[splits.split_of(text, job["splits"]["valid"], job["splits"]["test"], salt="doc")].append(text)

    tok = toks.from_json(tokenizer_json)
    dtype = np.dtype(job["dtype"])
    stats = {"documents": {}, "tokens": {}, "skipped": on_error.skipped, "skipped_examples": on_error.examples,
             "empty": counts["empty"]}
    for sp, docs in texts.items():
        chunks, lengths = [], []
        for i in range(0, len(docs), ENCODE_BATCH):
            for enc in tok.encode_batch(docs[i:i + ENCODE_BATCH], add_special_tokens=False):
                ids = enc.ids
                ids.append(job["eod"])
                chunks.append(np.asarray(ids, dtype=dtype))
                lengths.append(len(ids))
        if lengths:
            indexed.write_indexed(Path(out_dir) / "megatron" / sp / job["name"], np.concatenate(chunks),
                                  np.asarray(lengths, dtype=np.int32))
        stats["documents"][sp], stats["tokens"][sp] = len(lengths), int(sum(lengths))
    return stats


def make_blend(sources: dict, jobs: list[dict], stats: list[dict], vocab_size: int, tok) -> dict:
    return {"format": "megatron-indexed", "dtype": indexed.token_dtype(vocab_size).name, "vocab_size": vocab_size,
            "eod_id": tok.token_to_id(EOS), "tokenizer": "tokenizer",
            "sources": {n: {"weight": s["weight"]} for n, s in sources.items()},
            "splits": split_blend({n: s["weight"] for n, s in sources.items()}, jobs, stats,
                                  lambda job, sp: f"megatron/{sp}/{job['name']}")}


if __name__ == "__main__":
    sys.exit(run_main(main))
