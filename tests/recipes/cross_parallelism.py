"""The tiny model the FSDP/DCP tests build in process, and a 2-rank check that a checkpoint moves
between ddp and fsdp (run by tests/recipes/test_fsdp.py):

    torchrun --standalone --nproc-per-node 2 -m tests.recipes.cross_parallelism FOLDER

Each rank trains the tiny model one step under DDP and saves the trainer's checkpoint (DCP); a
fresh model, FSDP-sharded over the same ranks, loads it: its weights and AdamW moments must equal
the DDP model's, bit for bit, and one more step on the same batch must give the same loss and
weights as the DDP model's next step (within TOL: the reductions sum in another order). Then the
reverse: the FSDP model saves, a fresh DDP model loads it. Rank 0 writes FOLDER/cross.json (the
differences) and FOLDER/<name>.pt (the full weights each checkpoint holds, for the 1-process check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from recipes.nano3.training import checkpoint, optim, parallelize, settings
from recipes.nano3.training import model as modellib
from recipes.nano3.training.runtime import Runtime, start, stop

PRETRAIN = Path(__file__).resolve().parents[2] / "recipes/nano3/stage0_pretrain"


def small_tokenizer():
    """A real (fast) tokenizer of 100 words, built in memory: what save/consolidate write out."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0, "<|pad|>": 1, **{f"w{i}": i for i in range(2, 100)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<|pad|>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|pad|>")


def tiny(data: Path | None = None, seed: int = 0):
    """The tiny config's model (vocabulary: the data's tokenizer, or 100 words), AdamW, schedule."""
    from omegaconf import OmegaConf

    mcfg = OmegaConf.to_container(OmegaConf.load(PRETRAIN / "config/tiny.yaml"))["model"]
    tok = modellib.load_tokenizer(data / "tokenizer", "data_path") if data is not None else small_tokenizer()
    model = modellib.build(mcfg, tok, seed=seed)
    return model, tok, *optim.build(model, settings.COMMON["optim"], 10, "cpu")


def one_step(net, optimizer, scheduler, shift: int = 0) -> float:
    """One AdamW step on a fixed batch (`shift` varies it per rank); returns this rank's loss."""
    import torch

    ids = (torch.arange(32).view(2, 16) + shift) % 100
    loss = net(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    return float(loss.detach())


def full_state(model, optimizer) -> dict:
    """Full weights and AdamW moments keyed by parameter name, whatever the wrapping (all ranks call it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    msd, osd = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
    out = {f"model.{k}": parallelize.local(v).detach().clone() for k, v in msd.items()}
    for fqn, st in osd["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            out[f"optim.{fqn}.{key}"] = parallelize.local(st[key]).detach().clone()
    return out


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())[:4]
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def build(mode: str, rt: Runtime, seed: int):
    model, tok, opt, sched = tiny(seed=seed)
    net = parallelize.apply(model, rt, mode, checkpointing=False)
    if mode == "fsdp":  # sharded in place: the optimizer must hold the DTensor parameters
        opt, sched = optim.build(model, settings.COMMON["optim"], 10, "cpu")
    return model, net, tok, opt, sched


def move(src: str, dst: str, rt: Runtime, folder: Path) -> dict:
    """Train under `src`, checkpoint, load under `dst`; the differences (0 = bit for bit)."""
    import torch

    model, net, tok, opt, sched = build(src, rt, seed=0)
    one_step(net, opt, sched, shift=7 * rt.rank)
    path = checkpoint.save(folder / src, rt=rt, model=model, tokenizer=tok, optimizer=opt, scheduler=sched,
                           state={"step": 1}, keep=1, sharded=True)
    saved = full_state(model, opt)
    model2, net2, _, opt2, sched2 = build(dst, rt, seed=1)
    state = checkpoint.load(path, rt=rt, model=model2, optimizer=opt2, scheduler=sched2)
    loaded = full_state(model2, opt2)
    loss = one_step(net, opt, sched, shift=7 * rt.rank)
    loss2 = one_step(net2, opt2, sched2, shift=7 * rt.rank)
    if rt.is_main:
        torch.save({k: v for k, v in saved.items() if k.startswith("model.")}, folder / f"{src}.pt")
    return {"step": state["step"], "schedule": sched2.last_epoch, "loaded": max_diff(saved, loaded),
            "next_loss": abs(loss - loss2), "next_weights": max_diff(full_state(model, opt), full_state(model2, opt2))}


def main() -> None:
    folder = Path(sys.argv[1])
    rt = start({"threads": 1})
    try:
        out = {"world_size": rt.world_size, "ddp_to_fsdp": move("ddp", "fsdp", rt, folder),
               "fsdp_to_ddp": move("fsdp", "ddp", rt, folder)}
        if rt.is_main:
            (folder / "cross.json").write_text(json.dumps(out, indent=1) + "\n")
    finally:
        stop(rt)


if __name__ == "__main__":
    main()
