"""GRPO code for the nano3 RL stage (stage2_rl/train.py); eval reuses the reward and the sampler.

One job per module; train.py reads top to bottom and calls these:

- `settings`  the RL config: schema (a typo is an error), value checks, `load(argv, script)`
- `prompts`   the RL data (nano3-rl-data JSONL splits): rows, weighted sampling per step (resumable)
- `reward`    verifiable reward: answer check on the reference + a format reward
- `sampling`  left-padded batched `generate`: n completions per prompt, cut at the first stop token
- `actors`    Ray rollout actors (one model copy each) and the driver-side group: weights push, rollouts
- `grpo`      group-normalized advantages, token log-probs, clipped-ratio loss with KL to the reference

The trainer reuses recipes/nano3/training for everything that is not RL: runtime, model
load/save, optimizer and schedule, checkpoints (its full-copy format), metrics.jsonl + W&B,
SIGTERM -> checkpoint -> exit 75, RESULT.json.
"""
