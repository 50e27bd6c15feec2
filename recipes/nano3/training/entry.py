"""A trainer script's `main()` wrapper and the few steps both stages run the same way.

`run(main)`: caches and homes go to the state folder (nemotron_core.paths.state_env,
only where unset: HF_HOME, TORCHINDUCTOR_CACHE_DIR, WANDB_DIR, TMPDIR, ...), set before
torch/transformers are imported; then a NemotronError (bad config key/value, missing
data, tokenizer mismatch) is one line on stderr and exit 2; a preemption is exit 75.

`train(...)`: start the runtime (process group), fit, write RESULT.json, stop.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from nemotron_core.contract import RESUME_EXIT_CODE
from nemotron_core.errors import ConfigError, NemotronError
from nemotron_core.paths import state_env

from . import signals
from .signals import Preempted

DIRS = ("TMPDIR", "HF_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "WANDB_DIR", "WANDB_CACHE_DIR",
        "WANDB_CONFIG_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME")


def apply_state_env() -> None:
    for key, value in state_env().items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models and tokenizers come from artifacts, never the Hub
    for key in DIRS:
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)


def run(main: Callable[[list[str]], object], argv: list[str] | None = None) -> int:
    apply_state_env()
    rank = os.environ.get("RANK", "0")
    flag = signals.install()  # from the start: a SIGTERM while loading still ends in a checkpoint + exit 75
    try:
        main(sys.argv[1:] if argv is None else argv)
    except NemotronError as e:
        if rank == "0":
            print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except Preempted as p:
        if rank == "0":
            print(f"preempted: {p}", file=sys.stderr, flush=True)
        return RESUME_EXIT_CODE
    finally:
        flag.restore()
    return 0


def check_positions(model, seq_length: int, where: str) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and seq_length > limit:
        raise ConfigError(f"{where}: sequences of {seq_length} tokens exceed the model's max_position_embeddings "
                          f"({limit})")


def train(*, name: str, artifact: str, cfg: dict, model, tokenizer, train, valid, inputs: dict[str, Path]) -> dict:
    """Run the loop on this process's share of the work; rank 0 writes RESULT.json. Returns the summary."""
    from . import loop, result, runtime

    check_positions(model, train.seq_length, "train.seq_length" if name.endswith("pretrain") else "data_path")
    rt = runtime.start(cfg["runtime"])
    try:
        job = loop.Job(name=name, cfg=cfg, rt=rt, model=model, tokenizer=tokenizer, train=train, valid=valid,
                       out=Path(cfg["output_dir"]))
        summary = loop.fit(job)
        if rt.is_main:
            result.write(job, artifact, summary, inputs)
            print("summary:", {k: summary[k] for k in ("steps", "final_loss", "final_valid_loss", "tokens_per_s",
                                                       "elapsed_s")}, flush=True)
        runtime.barrier(rt)
        return summary
    finally:
        runtime.stop(rt)
