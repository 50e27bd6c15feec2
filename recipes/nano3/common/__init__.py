"""Code shared by the nano3 recipe scripts (data prep now; trainers and eval later).

One job per module:

- `errors`     DataError, the user-facing error for bad inputs
- `config`     load `--config file.yaml key=value ...`, config digests
- `cli`        run a script's main(): errors -> `error: <msg>` on stderr, exit 2; SIGTERM -> exit 75
- `outputs`    atomic writes, canonical JSON, RESULT.json, file hashes
- `splits`     deterministic train/valid/test split by hashing an item's key
- `world`      the seeded synthetic world (arithmetic, sequences, facts about made-up entities)
- `answers`    `answer_check(response, reference)` for RL rewards and eval
- `chat`       the chat template, chat tokenization with an assistant-only loss mask, packing
- `tokenizer`  BPE training / loading, saving as an HF tokenizer folder
- `indexed`    Megatron indexed dataset (.bin/.idx) writer (and a small reader)
- `blend`      per-split file weights from source weights (blend.json), `load_blend`
- `readers`    user data sources (JSONL / Parquet / text / HF folder by fsspec URI) with on_error
- `shards`     Ray: one task per shard, resumable via per-shard done markers
- `stats`      per-shard stats -> per-source and total stats for RESULT.json
"""
