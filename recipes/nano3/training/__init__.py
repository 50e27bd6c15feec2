"""Trainer code shared by the nano3 pretrain and SFT scripts (stage0_pretrain/train.py, stage1_sft/train.py).

One job per module; the two train.py scripts read top to bottom and call these:

- `settings`    the train config: schema (a typo is an error), value checks, `load(argv, script, kind)`
- `runtime`     where it runs: rank/world size, device, gloo|nccl, bf16 autocast, thread count
- `model`       build a decoder from the config (random init) or load one (HF folder), save HF layout
- `moe`         router hooks: the MoE load-balancing loss and tokens per expert (NemotronH)
- `data`        blend.json, the Batch, `BlendSampler`: global sample index -> (dataset, item), exact & resumable
- `windows`     pretrain batches: windows of Megatron .bin/.idx shards (memory-mapped) by blend.json
- `packed`      SFT batches: packed Parquet rows, loss mask -> targets, per-conversation positions
- `optim`       AdamW (decay on matrices only) + linear warmup / cosine decay
- `checkpoint`  atomic checkpoints (temp dir + rename), `latest()`, trainer state with RNG and data position
- `parallelize` DDP or FSDP2 (`parallelism.data`: fully_shard per block + root, bf16 on GPU, `auto` by size)
- `dcp_checkpoint` sharded checkpoints (torch.distributed.checkpoint): one shard per rank, async, reshard on
                load, `consolidate` -> HF safetensors
- `metrics`     metrics.jsonl (step, loss, lr, tokens/s, elapsed) + W&B (offline unless a key is set)
- `signals`     SIGTERM/SIGUSR1 -> stop flag -> checkpoint, PREEMPTED.json, exit RESUME_EXIT_CODE (75)
- `loop`        the training step and loop (grad accumulation, clipping, eval, logging, checkpoints)
- `result`      RESULT.json: final metrics, model info, input paths + digests for lineage
- `entry`       a script's main(): state-folder env, one-line errors (exit 2), preemption (exit 75);
                `train(...)`: runtime start -> fit -> RESULT.json -> stop
"""
