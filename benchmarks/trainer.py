"""Benchmark: tokens/s of our trainer step vs a bare PyTorch loop, same model, same batches;
and (--compare-arch) the tiny NemotronH vs the tiny Llama through our trainer, side by side.

    .venv/bin/python benchmarks/trainer.py [--config tiny|tiny_llama] [--steps 200] [--warmup 20] [--no-wait]
    .venv/bin/python benchmarks/trainer.py --compare-arch [--steps 200] [--warmup 20] [--no-wait]

Model and batches: a pretrain config (default `tiny`: NemotronH M E * E, hidden 128, 8 experts
top-2; `tiny_llama`: Llama h128 x 2 layers; both seq 64 x batch 16) on the tiny pretrain data
(built once under <state>/bench/trainer/ by the data prep).

- ours: per step exactly what `recipes/nano3/training/loop.fit` runs: `next_batches`
  (blend sampler -> memory-mapped windows), the step's `all_sum` (stop flag + target
  count), `train_step` (summed CE / global targets + the MoE load-balancing loss through
  router hooks, backward, clip, AdamW, LR schedule).
- bare: a nanoGPT-style loop: the same windows sliced from the same memmaps
  (precomputed sample list), `F.cross_entropy(...)` mean (+ for MoE the same load-balancing
  loss from the model's own `output_router_logits`), backward, clip, AdamW, LambdaLR; no
  sampler, no collectives, no hooks, no bookkeeping.

Both start from identical weights (same seed) and see the same batches in the same
order; they alternate step by step (ours, bare, bare, ours, ...) after --warmup steps
each, so machine noise hits both alike. tokens/s = tokens / wall seconds of the timed blocks; CPU use
(process time / wall, should be ~threads) is printed to expose other tenants. The last
line is the ratio (goal >= 0.95). --compare-arch alternates the two models' trainer steps
the same way and prints parameters (total / active per token) and tokens/s of each.
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
CONFIGS = REPO / "recipes/nano3/stage0_pretrain/config"


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


def bare_aux(outputs, k: int):
    """The Switch load-balancing loss from the model's own router logits (no hooks), = moe.RouterStats."""
    import torch

    losses = []
    for logits in outputs.router_logits:
        scores = torch.sigmoid(logits.float())
        probs = scores / (scores.sum(dim=-1, keepdim=True) + 1e-20)
        experts = logits.shape[-1]
        frac = torch.bincount(logits.topk(k, dim=-1).indices.flatten(), minlength=experts).float() / (logits.shape[0] * k)
        losses.append(experts * (frac * probs.mean(dim=0)).sum())
    return torch.stack(losses).mean()


def timed(impls: dict, steps: int, warmup: int) -> tuple[dict, dict]:
    """Wall and CPU seconds per implementation, alternating a, b, b, a, ... after `warmup` steps each."""
    names = list(impls)
    wall = {k: 0.0 for k in impls}
    cpu = {k: 0.0 for k in impls}
    for _ in range(warmup):  # allocator, oneDNN primitives
        for fn in impls.values():
            fn()
    for i in range(steps):
        for name in (names if i % 2 == 0 else names[::-1]):
            w0, c0 = time.perf_counter(), time.process_time()
            impls[name]()
            wall[name] += time.perf_counter() - w0
            cpu[name] += time.process_time() - c0
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="pretrain config under stage0_pretrain/config")
    parser.add_argument("--compare-arch", action="store_true", help="tiny (NemotronH) vs tiny_llama, our trainer")
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
    from recipes.nano3.training.moe import RouterStats
    from recipes.nano3.training.runtime import all_sum
    from recipes.nano3.training.windows import WindowData

    folder = data_folder()
    names = ["tiny", "tiny_llama"] if args.compare_arch else [args.config]
    cfgs = {n: OmegaConf.to_container(OmegaConf.load(CONFIGS / f"{n}.yaml")) for n in names}
    cfg = cfgs[names[0]]
    rt = runtime.start(cfg["runtime"])
    tok = modellib.load_tokenizer(folder / "tokenizer", "data_path")
    seq, micro, seed = cfg["train"]["seq_length"], cfg["train"]["micro_batch_size"], cfg["seed"]
    total_steps = args.warmup + args.steps
    data = WindowData(folder, "train", seq, seed, len(tok))

    def trainer_step(c: dict):
        """(our trainer's step for config c, its model)."""
        model = modellib.build(c["model"], tok, seed)
        opt, sched = optim.build(model, c["optim"], total_steps, rt.device_type)
        moe = RouterStats(model)
        consumed = 0

        def step() -> None:
            nonlocal consumed
            batches, targets = next_batches(data, consumed, rt=rt, micro=micro, accum=1)
            num_targets, _stop = all_sum(rt, [targets, 0.0])
            train_step(model, opt, sched, batches, rt=rt, grad_clip=c["train"]["grad_clip"],
                       num_targets=num_targets, moe=moe, aux_coef=c["train"].get("moe_aux_loss_coef", 0.0))
            if moe.active:
                moe.take_counts()  # what a log window does
            consumed += micro
        return step, model

    if not args.no_wait:
        wait_idle()
    if args.compare_arch:
        steps = {n: trainer_step(cfgs[n]) for n in names}
        wall, cpu = timed({n: fn for n, (fn, _) in steps.items()}, args.steps, args.warmup)
        tokens = args.steps * micro * seq
        print(f"seq {seq} x batch {micro}, {rt.threads} threads, {args.steps} timed steps each, our trainer")
        for n, (_, model) in steps.items():
            info = modellib.describe(model)
            active = info.get("active_parameters", info["parameters"])
            print(f"{n:10s} {info['arch']:10s} {info['parameters']:9,} params ({active:9,} active) "
                  f"{tokens / wall[n]:9.0f} tokens/s  {wall[n] / args.steps * 1000:6.1f} ms/step  "
                  f"cpu use {cpu[n] / wall[n]:.2f} cores")
        print(f"{names[0]} / {names[1]} tokens/s ratio: {wall[names[1]] / wall[names[0]]:.3f}x")
        return

    our_step, ours = trainer_step(cfg)
    coef = cfg["train"].get("moe_aux_loss_coef", 0.0)
    routed = RouterStats(ours).active

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
        out = bare(input_ids=x[:, :-1], use_cache=False, **({"output_router_logits": True} if routed else {}))
        logits = out.logits
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), x[:, 1:].reshape(-1))
        if routed and coef:
            loss = loss + coef * bare_aux(out, bare.config.num_experts_per_tok)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bare.parameters(), cfg["train"]["grad_clip"])
        b_opt.step()
        b_sched.step()
        b_opt.zero_grad(set_to_none=True)

    wall, cpu = timed({"ours": our_step, "bare": bare_step}, args.steps, args.warmup)
    tokens = args.steps * micro * seq
    same = all(torch.allclose(a, b, atol=1e-4) for a, b in zip(ours.parameters(), bare.parameters()))
    info = modellib.describe(ours)
    print(f"{args.config}: {info['arch']} {info['parameters']:,} params, seq {seq} x batch {micro}, "
          f"{rt.threads} threads, {args.steps} timed steps each; weights still equal: {same}")
    for name in wall:
        print(f"{name:5s} {tokens / wall[name]:9.0f} tokens/s   {wall[name] / args.steps * 1000:6.1f} "
              f"ms/step   cpu use {cpu[name] / wall[name]:.2f} cores")
    print(f"trainer / bare tokens/s ratio: {wall['bare'] / wall['ours']:.3f}x (goal >= 0.95)")


if __name__ == "__main__":
    main()
