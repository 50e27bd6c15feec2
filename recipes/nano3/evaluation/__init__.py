"""Model evaluation for nano3 (stage3_eval/eval.py) and the CLI's comparison table.

One job per module:

- `settings`    the eval config: schema, value checks, `load(argv, script)`
- `perplexity`  token loss / perplexity on the pretrain data's valid split (the trainers' windows + evaluate)
- `heldout`     greedy answers to held-out questions: exact match (chat and completion form), RL reward
- `lmeval`      a local lm-eval task from the held-out world items (YAML + JSONL written into output_dir),
                run through lm-eval's HF model adapter, offline
- `report`      results.json / RESULT.json records; the comparison table across model versions
- `compare`     `print_comparison(registry)`: the table over the newest eval of each model artifact
                (`nemotron evaluate`, nemotron_cli/evaluate.py, runs the eval and prints it)
"""
