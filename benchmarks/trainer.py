"""Benchmark: tokens/s of our trainer step vs a bare PyTorch loop, same model, same batches.

    .venv/bin/python benchmarks/trainer.py [--steps 200] [--warmup 20] [--no-wait]

Model and batches: the pretrain tiny config (Llama h128 x 2 layers, seq 64 x batch 16)
on the tiny pretrain data (built once under <state>/bench/trainer/ by the data prep).

- ours: per step exactly what `recipes/nano3/training/loop.fit` runs: `next_batches`
  (blend sampler -> memory-mapped windows), the step's `all_sum` (stop flag + target
  count), `train_step` (summed CE / global targets, backward, clip, AdamW, LR schedule).
- bare: a nanoGPT-style loop: the same windows sliced from the same memmaps
  (precomputed sample list), `F.cross_entropy(...)` mean, backward, clip, AdamW,
  LambdaLR; no sampler, no collectives, no bookkeeping.

Both start from identical weights (same seed) and see the same batches in the same
order; they alternate step by step (ours, bare, bare, ours, ...) after --warmup steps
each, so machine noise hits both alike. tokens/s = tokens / wall seconds of the timed blocks; CPU use
(process time / wall, should be ~threads) is printed to expose other tenants. The last
line is the ratio (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nemotron_core.paths import state_dir, state_env  # noqa: E402

PREP = REPO / "recipes/nano3/stage0_pretrain/data_prep.py"
CONFIG = REPO / "recipes/nano3/stage0_pretrain/config/tiny.yaml"


def cpu_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def wait_idle(limit: float = 120.0) -> None:
    """Wait (up to `limit` s) until other processes use < 0.3 cores over 2 s."""
    end = time.time() + limit
    while time.time() < end:
        a = cpu_busy()
        time.sleep(2)
        b = cpu_busy()
        busy = (b[0] - a[0]) / max(1, b[1] - a[1]) * os.cpu_count()
        if busy < 0.3:
            return
        print(f"waiting for an idle machine ({busy:.1f} cores busy)", flush=True)
    print("machine still busy; measuring anyway (both sides see the same noise)", flush=True)


def data_folder() -> Path:
    out = state_dir() / "bench" / "trainer" / "pretrain-data"
    if not (out / "RESULT.json").is_file():
        env = {**os.environ, **{k: v for k, v in state_env().items() if k not in os.environ}}
        env.pop("RAY_ADDRESS", None)
        subprocess.run([sys.executable, str(PREP), "--config", "tiny", f"output_dir={out}"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps of each first")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine")
    args = parser.parse_args()

    from recipes.nano3.training import entry

    entry.apply_state_env()
    import numpy as np
    import torch
    import torch.nn.functional as F
    from omegaconf import OmegaConf

    from recipes.nano3.training import model as modellib
    from recipes.nano3.training import optim, runtime
    from recipes.nano3.training.loop import next_batches, train_step
    from recipes.nano3.training.runtime import all_sum
    from recipes.nano3.training.windows import WindowData

    folder = data_folder()
    cfg = OmegaConf.to_container(OmegaConf.load(CONFIG))
    rt = runtime.start(cfg["runtime"])
    tok = modellib.load_tokenizer(folder / "tokenizer", "data_path")
    seq, micro, seed = cfg["train"]["seq_length"], cfg["train"]["micro_batch_size"], cfg["seed"]
    total_steps = args.warmup + args.steps
    data = WindowData(folder, "train", seq, seed, len(tok))

    # ours: the trainer's functions
    ours = modellib.build(cfg["model"], tok, seed)
    o_opt, o_sched = optim.build(ours, cfg["optim"], total_steps, rt.device_type)
    consumed = 0

    def our_step() -> None:
        nonlocal consumed
        batches, targets = next_batches(data, consumed, rt=rt, micro=micro, accum=1)
        num_targets, _stop = all_sum(rt, [targets, 0.0])
        train_step(ours, o_opt, o_sched, batches, rt=rt, grad_clip=cfg["train"]["grad_clip"],
                   num_targets=num_targets)
        consumed += micro

    # bare: same init, same windows, a plain loop
    bare = modellib.build(cfg["model"], tok, seed)
    oc = cfg["optim"]
    groups = [{"params": [p for p in bare.parameters() if p.dim() >= 2], "weight_decay": oc["weight_decay"]},
              {"params": [p for p in bare.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    b_opt = torch.optim.AdamW(groups, lr=oc["lr"], betas=(oc["beta1"], oc["beta2"]), eps=oc["eps"])
    b_sched = torch.optim.lr_scheduler.LambdaLR(b_opt, optim.WarmupCosine(oc["warmup_steps"], total_steps,
                                                                          oc["min_lr_ratio"]))
    windows = data.sampler.take(0, total_steps * micro)  # precomputed: the bare loop does no sampling
    bare_pos = 0

    def bare_step() -> None:
        nonlocal bare_pos
        x = torch.from_numpy(np.stack([data.tokens[d][k * seq:k * seq + seq + 1].astype(np.int64)
                                       for d, k in windows[bare_pos:bare_pos + micro]]))
        bare_pos += micro
        logits = bare(input_ids=x[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bare.parameters(), cfg["train"]["grad_clip"])
        b_opt.step()
        b_sched.step()
        b_opt.zero_grad(set_to_none=True)

    impls = {"ours": our_step, "bare": bare_step}
    wall = {k: 0.0 for k in impls}
    cpu = {k: 0.0 for k in impls}
    if not args.no_wait:
        wait_idle()
    for _ in range(args.warmup):  # allocator, oneDNN primitives
        for fn in impls.values():
            fn()
    for i in range(args.steps):
        for name in (("ours", "bare") if i % 2 == 0 else ("bare", "ours")):
            w0, c0 = time.perf_counter(), time.process_time()
            impls[name]()
            wall[name] += time.perf_counter() - w0
            cpu[name] += time.process_time() - c0
    tokens = args.steps * micro * seq
    same = all(torch.allclose(a, b, atol=1e-4) for a, b in zip(ours.parameters(), bare.parameters()))
    print(f"model {modellib.describe(ours)['parameters']:,} params, seq {seq} x batch {micro}, "
          f"{rt.threads} threads, {args.steps} timed steps each; weights still equal: {same}")
    for name in impls:
        print(f"{name:5s} {tokens / wall[name]:9.0f} tokens/s   {wall[name] / args.steps * 1000:6.1f} "
              f"ms/step   cpu use {cpu[name] / wall[name]:.2f} cores")
    print(f"trainer / bare tokens/s ratio: {wall['bare'] / wall['ours']:.3f}x (goal >= 0.95)")


if __name__ == "__main__":
    main()
