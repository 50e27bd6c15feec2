"""Benchmark: checkpoint save time and bytes per rank, DDP rank-0 full state vs DDP DCP vs FSDP
sharded (DCP), and the training step stall of an async sharded save vs a synchronous one; with --throughput,
the tiny trainer's tokens/s at 2 gloo ranks, DDP vs FSDP, side by side.

    .venv/bin/python benchmarks/checkpoint_sharding.py [--hidden 768 --layers 12] [--repeats 2] [--no-wait]
    .venv/bin/python benchmarks/checkpoint_sharding.py --throughput [--steps 60] [--rounds 2] [--no-wait]

Save: torchrun starts 2 gloo ranks (CPU). Each builds the same Llama (default hidden 768 x 12
layers, vocab 32k: 162M parameters, fp32), once wrapped in DDP and once `fully_shard`ed per block
(parallelize.py), runs 2 AdamW steps on each so the optimizer state exists, then saves with
the trainer's own `checkpoint.save` into <state>/bench/checkpoint_sharding/: the full-copy layout
(rank 0 writes model.safetensors + optimizer.pt, the others only their RNG file; what ddp wrote
before its checkpoints were DCP), DDP's DCP checkpoint (what the trainer writes now: DCP spreads
the replicated tensors' writes over the ranks) and the sharded one (every rank its FSDP shard).
Per rank: seconds in `save`, bytes it wrote. Async: the seconds the training thread is held
by `save(asynchronous=True)` (staging the shards to memory), then the next training step's
time while the shards are written in the background, vs the same step with no save pending,
and the time until the commit. Repeated --repeats times; the median is printed. The load
average is printed first: other tenants make every number noisy.

Throughput: the real trainer (recipes/nano3/stage0_pretrain/train.py, tiny config, micro-batch 8
x 2 ranks = the global batch 16, no checkpoints, no eval) under torchrun, DDP and FSDP alternated
--rounds times; tokens/s from each run's RESULT.json (the timed steps only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nemotron_core.paths import state_dir, state_env  # noqa: E402

TRAIN = REPO / "recipes/nano3/stage0_pretrain/train.py"
# (row key, parallelism, DCP?): the full-copy format (rank 0 writes it all, what ddp wrote before),
# DDP's DCP (what the trainers write now: each replicated tensor once, the writes spread over the
# ranks by DCP's planner) and FSDP's shards
SAVES = (("ddp", "ddp", False), ("ddp_dcp", "ddp", True), ("fsdp", "fsdp", True))
PREP = REPO / "recipes/nano3/stage0_pretrain/data_prep.py"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def child_env() -> dict:
    env = {**os.environ, **{k: v for k, v in state_env().items() if k not in os.environ}}
    for k in ("RAY_ADDRESS", "WORLD_SIZE", "RANK", "LOCAL_RANK", "WANDB_API_KEY"):
        env.pop(k, None)
    return env


def torchrun(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", "2", *args]


def wait_idle(enabled: bool) -> None:
    if not enabled:
        return
    sys.path.insert(0, str(REPO / "benchmarks"))
    from trainer import wait_idle as wait  # the trainer benchmark's idle check

    wait()


# ---- save benchmark: the worker (one per rank, under torchrun) ---------------------------------
def tokenizer():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0, "<|pad|>": 1}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<|pad|>")),
                                   eos_token="<|endoftext|>", pad_token="<|pad|>")


def build(hidden: int, layers: int):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("llama", vocab_size=32000, hidden_size=hidden, intermediate_size=4 * hidden,
                               num_hidden_layers=layers, num_attention_heads=hidden // 64,
                               num_key_value_heads=hidden // 64, max_position_embeddings=256,
                               tie_word_embeddings=False)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)


def step(net, model, optimizer, scheduler) -> float:
    import torch

    t0 = time.perf_counter()
    ids = torch.randint(0, 32000, (1, 32), generator=torch.Generator().manual_seed(1))
    net(input_ids=ids, labels=ids).loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def written(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def worker(args) -> None:
    import shutil

    import torch

    from recipes.nano3.training import checkpoint, optim, parallelize, runtime, settings

    rt = runtime.start({"device": "cpu", "backend": "gloo", "precision": "fp32", "threads": "auto",
                        "compile": False})
    root, tok = Path(args.out), tokenizer()
    ocfg = settings.COMMON["optim"]
    rows: dict[str, list[float]] = {}

    def record(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    setups = {}
    for mode in ("ddp", "fsdp"):
        model = build(args.hidden, args.layers)
        net = parallelize.apply(model, rt, mode, checkpointing=False)
        opt, sched = optim.build(model, ocfg, 100, "cpu")
        for _ in range(2):
            step(net, model, opt, sched)
        setups[mode] = (model, net, opt, sched)
    params = sum(p.numel() for p in build(args.hidden, args.layers).parameters())

    for r in range(args.repeats):
        for key, mode, dcp in SAVES:
            model, net, opt, sched = setups[mode]
            folder = root / f"{key}-{r}"
            runtime.barrier(rt)
            t0 = time.perf_counter()
            path = checkpoint.save(folder, rt=rt, model=model, tokenizer=tok, optimizer=opt, scheduler=sched,
                                   state={"step": r + 1}, keep=1, sharded=dcp)
            record(f"{key}_save_s", time.perf_counter() - t0)
            mine = [path / "rng" / f"rank_{rt.rank:05d}.pt"]
            if dcp:
                mine += [path / "dcp" / f"__{rt.rank}_0.distcp"]
            if rt.is_main:
                mine += [p for p in path.rglob("*") if "rng" not in p.parts and not p.name.endswith(".distcp")]
            record(f"{key}_bytes", written(mine))
        # async: the stall in save(), the next step with the writes in flight vs a plain step
        model, net, opt, sched = setups["fsdp"]
        runtime.barrier(rt)
        record("plain_step_s", step(net, model, opt, sched))
        runtime.barrier(rt)
        t0 = time.perf_counter()
        pending = checkpoint.save(root / f"async-{r}", rt=rt, model=model, tokenizer=tok, optimizer=opt,
                                  scheduler=sched, state={"step": r + 1}, keep=1, sharded=True, asynchronous=True)
        record("async_stall_s", time.perf_counter() - t0)
        record("step_during_write_s", step(net, model, opt, sched))
        checkpoint.commit(pending, rt)
        record("async_commit_s", time.perf_counter() - t0)
        runtime.barrier(rt)
    gathered: list = [None] * rt.world_size
    torch.distributed.all_gather_object(gathered, rows)
    if rt.is_main:
        print(json.dumps({"parameters": params, "ranks": gathered}))
        shutil.rmtree(root, ignore_errors=True)
    runtime.stop(rt)


def save_benchmark(args) -> None:
    out = state_dir() / "bench" / "checkpoint_sharding"
    wait_idle(not args.no_wait)
    print(f"load average before: {load()}", flush=True)
    p = subprocess.run(torchrun(__file__, "--worker", "--out", str(out), "--hidden", str(args.hidden),
                                "--layers", str(args.layers), "--repeats", str(args.repeats)),
                       capture_output=True, text=True, env=child_env(), cwd=REPO)
    if p.returncode:
        sys.exit(f"error: the save benchmark failed (rc={p.returncode}):\n{p.stderr[-3000:]}")
    res = json.loads([line for line in p.stdout.splitlines() if line.startswith("{")][-1])
    med = lambda vals: statistics.median(vals)  # noqa: E731
    ranks = res["ranks"]
    print(f"load average after: {load()}")
    print(f"model: Llama hidden {args.hidden} x {args.layers} layers, {res['parameters'] / 1e6:.0f}M params fp32; "
          f"2 gloo ranks; median of {args.repeats}")
    print(f"{'':24}{'rank 0':>14}{'rank 1':>14}")
    for key, label in (("ddp", "DDP rank-0 full"), ("ddp_dcp", "DDP DCP"), ("fsdp", "FSDP sharded")):
        print(f"{label + ' save s':24}" + "".join(f"{med(r[key + '_save_s']):>14.2f}" for r in ranks))
        print(f"{label + ' MB':24}" + "".join(f"{med(r[key + '_bytes']) / 1e6:>14.1f}" for r in ranks))
    for key, label in (("async_stall_s", "async: save() holds s"), ("plain_step_s", "step, nothing pending s"),
                       ("step_during_write_s", "step, writes in flight s"), ("async_commit_s", "async: to commit s")):
        print(f"{label:24}" + "".join(f"{med(r[key]):>14.2f}" for r in ranks))
    ddp, fsdp = med(ranks[0]["ddp_save_s"]), max(med(r["fsdp_save_s"]) for r in ranks)
    ddp_dcp = max(med(r["ddp_dcp_save_s"]) for r in ranks)
    print(f"DDP DCP save / rank-0 save: {ddp_dcp / ddp:.2f}x the time")
    print(f"sharded save / rank-0 save: {fsdp / ddp:.2f}x the time; async stall / sync sharded save: "
          f"{med(ranks[0]['async_stall_s']) / med(ranks[0]['fsdp_save_s']):.2f}")


# ---- throughput: the real trainer, DDP vs FSDP at 2 ranks ----------------------------------------
def throughput(args) -> None:
    root = state_dir() / "bench" / "checkpoint_sharding"
    data = root / "pretrain-data"
    if not (data / "RESULT.json").is_file():
        subprocess.run([sys.executable, str(PREP), "--config", "tiny", f"output_dir={data}"], check=True,
                       env=child_env(), stdout=subprocess.DEVNULL)
    wait_idle(not args.no_wait)
    print(f"load average before: {load()}", flush=True)
    seen: dict[str, list[float]] = {"ddp": [], "fsdp": []}
    for r in range(args.rounds):
        for mode in ("ddp", "fsdp") if r % 2 == 0 else ("fsdp", "ddp"):
            out = root / f"throughput-{mode}"
            subprocess.run(torchrun(str(TRAIN), "--config", "tiny", f"output_dir={out}", f"data_path={data}",
                                    "resume=never", f"train.max_steps={args.steps}", "checkpoint.interval=0",
                                    "eval.interval=0", "eval.batches=1", "log.wandb.mode=disabled",
                                    "train.micro_batch_size=8", f"parallelism.data={mode}"),
                           check=True, env=child_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seen[mode].append(json.loads((out / "RESULT.json").read_text())["metrics"]["tokens_per_s"])
    print(f"load average after: {load()}")
    for mode, vals in seen.items():
        print(f"{mode:5} tokens/s: " + ", ".join(f"{v:.0f}" for v in vals) + f"  (median {statistics.median(vals):.0f})")
    print(f"fsdp / ddp: {statistics.median(seen['fsdp']) / statistics.median(seen['ddp']):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--throughput", action="store_true")
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-wait", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
    elif args.throughput:
        throughput(args)
    else:
        save_benchmark(args)


if __name__ == "__main__":
    main()
