# /// script
# [tool.runspec]
# schema = "1"
# name = "nano3/rl"
# image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
# setup = "Needs the nemotron-flows package installed (scripts/setup)."
#
# [tool.runspec.run]
# launch = "ray"
# cmd = "python {script} --config {config}"
#
# [tool.runspec.config]
# dir = "./config"
# default = "default"
# format = "omegaconf"
#
# [tool.runspec.resources]
# nodes = 1
# gpus_per_node = 8
# ///
"""Nano3 stage 2: GRPO reinforcement learning with verifiable rewards, rollouts on Ray actors.

    python train.py --config config/tiny.yaml data_path=/path/to/rl-data base_model=/path/to/sft-model \\
        output_dir=/path/out [key=value ...]
    nemotron nano3 rl -c tiny                  # the same through the toolkit (RayJob on Slurm, local Ray head)

Inputs: `base_model` (artifact nano3-sft-model: HF folder or model artifact folder) is the
initial policy and the frozen KL reference; `data_path` (artifact nano3-rl-data) holds the
prompts with reference answers (train: RL; valid: held-out reward during training).

One GRPO step: draw prompts_per_step prompts (by weight, seeded by the step) -> the Ray
rollout actors sample samples_per_prompt completions each -> reward = answer check against
the reference + format reward -> group-normalized advantages -> clipped-ratio policy loss
with KL to the reference, `grpo.minibatches` optimizer steps -> push the new weights to
every actor. Held-out greedy reward/accuracy on the valid split at the start, every
eval.interval steps and at the end.

Output (output_dir; the caller registers it as nano3-rl-model once RESULT.json exists):

  model/                    HF layout: config.json, generation_config.json, model.safetensors, tokenizer
  checkpoints/step_N/       model/ + optimizer.pt + RNG + trainer state (checkpoint.py's full-copy format:
                            one process; pretrain/SFT write DCP, which loads under ddp or fsdp)
  metrics.jsonl             step, reward, accuracy, format, kl, response_length, loss, clip_frac, lr,
                            grad_norm, rollout_s, update_s, elapsed (+ valid_reward, valid_accuracy, ...)
  RESULT.json               final metrics (train and held-out reward/accuracy, start vs end), model, inputs
  PREEMPTED.json            only after SIGTERM/SIGUSR1: checkpoint saved, exit 75, rerun to resume

Exit codes: 0 done; 2 bad config or data (one-line error, nothing written); 75 preempted.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from nemotron_core.errors import ConfigError

from recipes.nano3.rl import grpo, settings
from recipes.nano3.rl.actors import RolloutGroup, StopRequested
from recipes.nano3.rl.prompts import Prompts
from recipes.nano3.rl.reward import score, summarize
from recipes.nano3.training import checkpoint, entry, loop, optim, result, runtime
from recipes.nano3.training import model as modellib
from recipes.nano3.training.metrics import Metrics
from recipes.nano3.training.signals import Preempted, StopFlag

NAME, ARTIFACT = "nano3/rl", "nano3-rl-model"
WINDOW_KEYS = ("reward", "accuracy", "format", "response_length", "kl", "loss", "clip_frac", "rollout_s", "update_s")


def main(argv: list[str]) -> None:
    # 1. The config (train.yaml from the toolkit): every key and value checked.
    cfg = settings.load(argv, script=Path(__file__))
    out, data_path, seed = Path(cfg["output_dir"]), Path(cfg["data_path"]), cfg["seed"]
    ro, gr, tr, ev, lg, ck = (cfg[k] for k in ("rollout", "grpo", "train", "eval", "log", "checkpoint"))
    G, P = ro["samples_per_prompt"], ro["prompts_per_step"]

    # 2. Policy and frozen reference, both the SFT model; the RL data must use its tokenizer.
    policy, tokenizer = modellib.load(cfg["base_model"], "base_model")
    data_tokenizer = modellib.load_tokenizer(data_path / "tokenizer", "data_path")
    tokenizer = tokenizer or data_tokenizer
    modellib.check_same_tokenizer(tokenizer, data_tokenizer, f"base_model {cfg['base_model']} vs data_path {data_path}")
    reference, _ = modellib.load(cfg["base_model"], "base_model")
    reference.requires_grad_(False).eval()
    pad_id, stop_ids = tokenizer.pad_token_id, list(policy.generation_config.eos_token_id)
    sampling = {"max_new_tokens": ro["max_new_tokens"], "pad_id": pad_id, "stop_ids": stop_ids}

    # 3. Prompts: train for RL, valid (held out) for the reward we report.
    train = Prompts(data_path, "train", vocab_size=policy.config.vocab_size)
    valid = Prompts(data_path, "valid", vocab_size=policy.config.vocab_size)
    if not len(train):
        raise ConfigError(f"config key 'data_path': {data_path}/train has no prompts")
    entry.check_positions(policy, max(train.max_prompt_tokens, valid.max_prompt_tokens) + ro["max_new_tokens"],
                          "rollout.max_new_tokens + the longest prompt")

    # 4. Output dir; the newest complete checkpoint to resume from (resume: auto); metrics.
    rt = runtime.start(cfg["runtime"])
    job = loop.Job(name=NAME, cfg=cfg, rt=rt, model=policy, tokenizer=tokenizer, train=train, valid=valid, out=out)
    ckpts = loop._prepare_output(job)
    ckpt = checkpoint.latest(ckpts) if cfg["resume"] == "auto" else None
    resumed_at = checkpoint.step_of(ckpt) if ckpt is not None else None
    state = {"step": 0, "samples": 0, "elapsed": 0.0, "wandb_id": None, "config_digest": settings.digest(cfg),
             "resumes": 0, "valid_start": None}
    if ckpt is not None:
        state.update(json.loads((ckpt / "trainer_state.json").read_text()))
    metrics = Metrics(out / lg["metrics_file"], enabled=True, wcfg=lg["wandb"], run_name=out.name, config=cfg,
                      resume_step=resumed_at, wandb_id=state["wandb_id"])
    state["wandb_id"] = metrics.wandb_id
    flag = StopFlag()  # after wandb.init (it may install handlers); Ray keeps it (common/shards.init_ray)

    t_start, elapsed0 = time.perf_counter(), state["elapsed"]
    elapsed = lambda: round(elapsed0 + time.perf_counter() - t_start, 3)  # noqa: E731
    last_saved, steps_here, exit_code, group, optimizer, scheduler = resumed_at, 0, 1, None, None, None

    def save() -> Path:
        nonlocal last_saved
        state["elapsed"] = elapsed()
        path = checkpoint.save(ckpts, rt=rt, model=policy, tokenizer=tokenizer, optimizer=optimizer,
                               scheduler=scheduler, state=dict(state), keep=ck["keep"])
        last_saved = state["step"]
        return path

    def heldout() -> dict:
        """Greedy answers of the current weights (on the actors) to the held-out valid prompts."""
        rows = valid.head(ev["prompts"])
        done, _ = group.generate([r["prompt_ids"] for r in rows], n=1, seed=0, greedy=True,
                                 batch_size=ev["batch_size"], **sampling)
        texts = tokenizer.batch_decode(done, skip_special_tokens=False)
        stats = summarize([score(t, r["reference"], gr["format_reward"]) for t, r in zip(texts, rows)],
                          [len(c) for c in done])
        return {f"valid_{k}": v for k, v in stats.items()}

    try:
        import torch

        # 5. Rollout actors (Ray); the learner takes a GPU no actor holds; optimizer; resume; first push.
        group = RolloutGroup(modellib.model_dir(cfg["base_model"], "base_model"), ro, stop=flag)
        rt = learner_device(rt, group.used_gpus)
        policy.to(rt.device).train()
        reference.to(rt.device)
        optimizer, scheduler = optim.build(policy, cfg["optim"], tr["max_steps"] * gr["minibatches"], rt.device_type)
        if ckpt is not None:
            state.update(checkpoint.load(ckpt, rt=rt, model=policy, optimizer=optimizer, scheduler=scheduler))
            state["resumes"] += 1
            print(f"resumed from {ckpt} (step {state['step']})", flush=True)
        group.push(policy, version=state["step"])
        last_valid = None
        if valid.rows and resumed_at is None:
            last_valid = heldout()
            state["valid_start"] = last_valid
            metrics.log({"step": 0, "elapsed": elapsed(), **last_valid})

        # 6. The GRPO loop.
        window = {k: 0.0 for k in WINDOW_KEYS}
        window_steps, last = 0, {}
        while state["step"] < tr["max_steps"]:
            if flag.requested:
                raise StopRequested()
            step = state["step"]
            t0 = time.perf_counter()
            # rollouts: G completions per prompt from the actors, all sampled by the weights of this step
            rows = [r for r in train.sample(seed, step, P) for _ in range(G)]  # prompt-major, like the completions
            done, versions = group.generate([r["prompt_ids"] for r in rows[::G]], n=G, seed=seed * 100_003 + step,
                                            temperature=ro["temperature"], top_p=ro["top_p"], **sampling)
            assert versions == {step}, f"rollouts from weights {versions}, expected {step}"  # on-policy
            # rewards: the answer checked against the reference, + the format reward
            texts = tokenizer.batch_decode(done, skip_special_tokens=False)
            scores = [score(t, r["reference"], gr["format_reward"]) for t, r in zip(texts, rows)]
            t1 = time.perf_counter()

            # update: group-normalized advantages, clipped ratio + KL to the reference; then push the weights
            rewards = torch.tensor([s.reward for s in scores])
            batch = grpo.make_batch([r["prompt_ids"] for r in rows], done, grpo.advantages(rewards, G), pad_id)
            lr = optimizer.param_groups[0]["lr"]
            upd = grpo.update(policy, reference, batch.to(rt.device), optimizer=optimizer, scheduler=scheduler, rt=rt,
                              micro=tr["micro_batch_size"], minibatches=gr["minibatches"], clip_eps=gr["clip_eps"],
                              kl_coef=gr["kl_coef"], grad_clip=tr["grad_clip"])
            state["step"] += 1
            state["samples"] += P
            steps_here += 1
            step = state["step"]
            group.push(policy, version=step)  # every step: the actors sample from the newest policy
            t2 = time.perf_counter()

            last = {**summarize(scores, [len(c) for c in done]), **upd, "rollout_s": t1 - t0, "update_s": t2 - t1}
            for k in WINDOW_KEYS:
                window[k] += last[k]
            window_steps += 1
            row = None
            if step % lg["interval"] == 0 or step == tr["max_steps"]:
                row = {"step": step, **{k: v / window_steps for k, v in window.items()}, "lr": lr,
                       "grad_norm": upd["grad_norm"], "elapsed": elapsed(), "samples": state["samples"]}
                window, window_steps = {k: 0.0 for k in WINDOW_KEYS}, 0
            if valid.rows and ((ev["interval"] and step % ev["interval"] == 0) or step == tr["max_steps"]):
                last_valid = heldout()
                row = {**(row or {"step": step, "elapsed": elapsed()}), **last_valid}
            if row is not None:
                metrics.log(row)
            if ck["interval"] and step % ck["interval"] == 0 and step < tr["max_steps"]:
                save()

        # 7. Final checkpoint, model/ for the registry, RESULT.json (last).
        if last_valid is None and valid.rows:  # resumed from the final checkpoint
            last_valid = heldout()
        final = save() if last_saved != state["step"] else ckpts / checkpoint.name(state["step"])
        loop.export_model(final, out)
        summary = {
            "steps": state["step"], "samples": state["samples"], "group_size": G, "actors": ro["actors"],
            **{f"final_{k}": last.get(k) for k in ("reward", "accuracy", "format", "kl", "response_length")},
            **(last_valid or {}),
            **{f"{k}_start": v for k, v in (state["valid_start"] or {}).items()},
            "elapsed_s": elapsed(), "resumes": state["resumes"], "resumed_from_step": resumed_at,
            "steps_this_attempt": steps_here, "checkpoint": str(final.relative_to(out)), "wandb_id": state["wandb_id"],
        }
        metrics.summary({k: v for k, v in summary.items() if isinstance(v, (int, float)) and v is not None})
        result.write(job, ARTIFACT, summary, {"data": data_path, "base_model": Path(cfg["base_model"])})
        print("summary:", {k: summary.get(k) for k in ("steps", "final_reward", "valid_reward_start", "valid_reward",
                                                      "valid_accuracy_start", "valid_accuracy", "elapsed_s")},
              flush=True)
        exit_code = 0
    except StopRequested:
        if optimizer is None:  # stopped while the actors were starting: the step-0 state is the base model
            optimizer, scheduler = optim.build(policy, cfg["optim"], tr["max_steps"] * gr["minibatches"], "cpu")
        path = save() if last_saved != state["step"] else ckpts / checkpoint.name(state["step"])
        p = Preempted(flag.signum or 15, state["step"], path)
        p.write_marker(out)
        exit_code = 75
        raise p from None
    finally:
        flag.restore()
        metrics.close(exit_code)
        if group is not None:
            group.close()


def learner_device(rt: runtime.Runtime, used_gpus: list[int]) -> runtime.Runtime:
    """On GPU, the first GPU that no rollout actor holds (Ray hands GPUs to actors only)."""
    if rt.device_type != "cuda":
        return rt
    import torch

    free = [g for g in range(torch.cuda.device_count()) if g not in used_gpus]
    if not free:
        raise ConfigError(f"rollout.actors x rollout.gpus_per_actor take every GPU ({used_gpus}); leave one "
                          f"for the learner")
    torch.cuda.set_device(free[0])
    return dataclasses.replace(rt, device=f"cuda:{free[0]}")


if __name__ == "__main__":
    sys.exit(entry.run(main))
