"""FSDP2 training and sharded (DCP) checkpoints: recipes/nano3/training/{parallelize,dcp_checkpoint}.py.

CI (cheap, seconds): the `auto` rule, config errors, a sharded checkpoint round trip in one
process (async save + commit, save, load, consolidate to the HF folder); one 2-rank torchrun
(~20 s) that moves a checkpoint ddp -> fsdp and fsdp -> ddp (bit for bit) and each into 1 process.

Slow (-m slow; each run of the trainer costs 20-40 s here): one 2-rank gloo FSDP run (torchrun)
whose checkpoints hold one shard file per rank, whose output model is consolidated, and whose
checkpoint loads into one process (the optimizer state resharded to full size). The loss curves:
2 ranks FSDP vs 1 process from the same seed; resumed 2 -> 1 and 1 -> 2 ranks with the same global
batch (micro-batch 8 x 2 ranks = 16 x 1); 2 -> 4, 4 -> 2 and 4 -> 1 ranks (micro-batch 4 x 4);
ddp -> fsdp and fsdp -> ddp at 2 ranks (every trainer checkpoint is DCP); a full-copy checkpoint
from before DCP is refused by fsdp in one line and resumed by ddp. Tolerance: every logged
training loss within 1e-3 of the reference (the reduce-scatter sums in another order; the MoE
top-k routing can then send a token to another expert; seen: 1e-6 over 8 steps, 2e-4 over 20;
2e-5 at 4 ranks). The valid loss is not compared across ranks: `eval.batches` counts
micro-batches, so its sample count follows the micro-batch size. SIGTERM and SIGKILL with FSDP
resume to the same final loss within the same tolerance.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_core.errors import ConfigError
from recipes.nano3.training import checkpoint, dcp_checkpoint, parallelize, settings
from recipes.nano3.training import model as modellib
from recipes.nano3.training.runtime import Runtime
from tests.reliability.killing import kill_tree

from .cross_parallelism import one_step, tiny
from .test_trainers import PREP, QUIET, REPO, TRAIN, env, losses, result, rows, run, wait_for

TOL = 1e-3  # a logged loss vs the reference's (see the module docstring)
# 8 steps, checkpoints at 4 and 8, eval at 4 and 8; one thread per process (2 cores, 2 ranks)
SHORT = ["train.max_steps=8", "checkpoint.interval=4", "eval.interval=4", "log.interval=2", "eval.batches=3",
         "runtime.threads=1", *QUIET]


def fsdp_cmd(out: Path, data: Path, ranks: int, *overrides: str) -> list[str]:
    """`ranks` processes with the tiny config's global batch (16): micro-batch 16 / ranks."""
    script = [str(TRAIN["pretrain"]), "--config", "tiny", f"output_dir={out}", f"data_path={data}", *SHORT,
              "parallelism.data=fsdp", f"train.micro_batch_size={16 // ranks}", *overrides]
    if ranks == 1:
        return [sys.executable, *script]
    return [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", str(ranks),
            *script]


def close(a: list[tuple], b: list[tuple]) -> bool:
    """Same steps, every training loss within TOL."""
    train_a, train_b = [(r[0], r[1]) for r in a if r[1] is not None], [(r[0], r[1]) for r in b if r[1] is not None]
    return [r[0] for r in train_a] == [r[0] for r in train_b] and \
        all(abs(x[1] - y[1]) <= TOL for x, y in zip(train_a, train_b))


def resume_copy(src: Path, dst: Path, step: int) -> Path:
    """A fresh output folder holding only src's checkpoint at `step` (what a requeued job finds)."""
    (dst / "checkpoints").mkdir(parents=True)
    shutil.copytree(src / "checkpoints" / checkpoint.name(step), dst / "checkpoints" / checkpoint.name(step))
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsdp") / "pretrain-data"
    run([sys.executable, str(PREP["pretrain"]), "--config", "tiny", f"output_dir={out}"])
    return out


def trained(data: Path, name: str, ranks: int, *overrides: str) -> Path:
    """The 8-step run at `ranks` processes, next to the data (shared by the module's tests)."""
    out = data.parent / name
    run(fsdp_cmd(out, data, ranks, *overrides))
    return out


@pytest.fixture(scope="module")
def fsdp2(data) -> Path:
    return trained(data, "fsdp-2-ranks", 2)


@pytest.fixture(scope="module")
def ddp2(data) -> Path:
    return trained(data, "ddp-2-ranks", 2, "parallelism.data=ddp")


@pytest.fixture(scope="module")
def fsdp4(data) -> Path:
    """4 ranks (micro-batch 4) on 2 cores: slow, the same global batch and sample order."""
    return trained(data, "fsdp-4-ranks", 4)


@pytest.fixture(scope="module")
def one(data) -> Path:
    """1 process, parallelism fsdp: nothing to shard, DCP checkpoints (the reference curve)."""
    return trained(data, "fsdp-1-rank", 1)


# ---- the rule and the config -----------------------------------------------------------------
def test_auto_picks_fsdp_when_a_replica_needs_over_half_a_device():
    gib = 1 << 30
    assert parallelize.choose("auto", parameters=700_000, world_size=2, memory=8 * gib) == "ddp"
    # 1.9B params x 16 B = 30 GB > 40 GB (half of an 80 GB H100) no; 3B x 16 = 48 GB > 40 GB yes
    assert parallelize.choose("auto", parameters=1_900_000_000, world_size=8, memory=80 * gib) == "ddp"
    assert parallelize.choose("auto", parameters=3_000_000_000, world_size=8, memory=80 * gib) == "fsdp"
    assert parallelize.choose("auto", parameters=3_000_000_000, world_size=1, memory=80 * gib) == "ddp"
    assert parallelize.choose("ddp", parameters=3_000_000_000, world_size=8, memory=80 * gib) == "ddp"


@pytest.mark.parametrize("override, needle", [
    ("parallelism.data=fdsp", "config key 'parallelism.data': 'fdsp' is not one of"),
    ("parallelism.activation_checkpointing=1", "config key 'parallelism.activation_checkpointing'"),
    ("checkpoint.async_save=later", "config key 'checkpoint.async_save'"),
])
def test_parallelism_config_errors_name_the_key(tmp_path, override, needle):
    argv = ["--config", "tiny", f"output_dir={tmp_path}", f"data_path={tmp_path}", override]
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        settings.load(argv, script=TRAIN["pretrain"], kind="pretrain")


def test_default_configs_shard_the_big_model():
    for stage in ("pretrain", "sft"):
        cfg = settings.load(["--config", "default", "output_dir=/x", "data_path=/x", "base_model=/x"]
                            if stage == "sft" else ["--config", "default", "output_dir=/x", "data_path=/x"],
                            script=TRAIN[stage], kind=stage)
        assert cfg["parallelism"]["data"] == "fsdp" and cfg["checkpoint"]["async_save"] is True, stage


# ---- a sharded checkpoint in one process ----------------------------------------------------
def test_sharded_checkpoint_round_trip_async_commit_and_consolidation(tmp_path):
    import torch

    model, tok, opt, sched = tiny()
    one_step(model, opt, sched)
    folder, rt = tmp_path / "checkpoints", Runtime()
    pending = checkpoint.save(folder, rt=rt, model=model, tokenizer=tok, optimizer=opt, scheduler=sched,
                              state={"step": 1}, keep=2, sharded=True, asynchronous=True)
    assert isinstance(pending, checkpoint.Pending)
    checkpoint.commit(pending, rt)  # waits for the writer, then COMPLETE + rename
    one_step(model, opt, sched)
    path = checkpoint.save(folder, rt=rt, model=model, tokenizer=tok, optimizer=opt, scheduler=sched,
                           state={"step": 2}, keep=2, sharded=True)
    assert [checkpoint.step_of(c) for c in checkpoint.complete(folder)] == [1, 2] and path == folder / "step_00000002"
    assert sorted(p.name for p in (path / "dcp").iterdir()) == [".metadata", "__0_0.distcp"]

    assert checkpoint.latest(folder) == path and sorted(p.name for p in path.iterdir()) == \
        [checkpoint.COMPLETE, "dcp", "hf", "rng", "scheduler.pt", "trainer_state.json"]

    other, _, opt2, sched2 = tiny(seed=1)
    checkpoint.load(path, rt=rt, model=other, optimizer=opt2, scheduler=sched2)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    assert sched2.last_epoch == 2 and opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])

    hf = dcp_checkpoint.consolidate(path, tmp_path / "model")  # what the export and a publish read
    loaded, tok2 = modellib.load(hf, "model")
    assert tok2 is not None and not (tmp_path / ".tmp-model").exists()
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_activation_checkpointing_recomputes_to_the_same_gradients():
    import torch

    plain, _, _, _ = tiny(seed=3)
    ckpt, _, _, _ = tiny(seed=3)
    net = parallelize.apply(ckpt, Runtime(), "ddp", checkpointing=True)  # one process: not wrapped
    assert net is ckpt and ckpt.is_activation_checkpointing
    ids = torch.arange(64).view(2, 32) % 100
    for m in (plain, ckpt):
        m.train()
        m(input_ids=ids, labels=ids).loss.backward()
    grads = [(a.grad, b.grad) for a, b in zip(plain.parameters(), ckpt.parameters()) if a.grad is not None]
    assert grads and all(torch.allclose(a, b, atol=1e-6) for a, b in grads)


# ---- ddp <-> fsdp (2 gloo ranks, one torchrun: ~20 s) -------------------------------------------
def test_a_checkpoint_moves_between_ddp_and_fsdp(tmp_path):
    """A DDP-written checkpoint loads into an FSDP-sharded model and the reverse (cross_parallelism.py),
    bit for bit, and the next step matches; each then loads into one process."""
    import torch

    torchrun = str(Path(sys.executable).with_name("torchrun"))
    run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "tests.recipes.cross_parallelism", str(tmp_path)])
    res = json.loads((tmp_path / "cross.json").read_text())
    assert res["world_size"] == 2
    for direction in ("ddp_to_fsdp", "fsdp_to_ddp"):
        r = res[direction]
        assert r["step"] == 1 and r["schedule"] == 2 and r["loaded"] == 0.0, (direction, r)
        assert r["next_loss"] <= TOL and r["next_weights"] <= TOL, (direction, r)
    for src in ("ddp", "fsdp"):  # 2 -> 1 rank, both writers
        ckpt = checkpoint.latest(tmp_path / src)
        assert ckpt is not None and dcp_checkpoint.is_sharded(ckpt)
        model, _, opt, sched = tiny(seed=2)
        checkpoint.load(ckpt, rt=Runtime(), model=model, optimizer=opt, scheduler=sched)
        saved, mine = torch.load(tmp_path / f"{src}.pt"), model.state_dict()
        assert saved and all(torch.equal(v, mine[k.removeprefix("model.")]) for k, v in saved.items()), src


# ---- 2 gloo ranks (torchrun), slow --------------------------------------------------------------
@pytest.mark.slow
def test_fsdp_two_ranks_write_one_shard_per_rank_and_a_consolidated_model(fsdp2):
    res = result(fsdp2)
    assert res["runtime"]["world_size"] == 2 and res["metrics"]["steps"] == 8
    assert res["metrics"]["parallelism"] == "fsdp"
    ckpts = checkpoint.complete(fsdp2 / "checkpoints")
    assert [checkpoint.step_of(c) for c in ckpts] == [4, 8]
    for c in ckpts:
        assert sorted(p.name for p in (c / "dcp").iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
        assert sorted(p.name for p in (c / "rng").iterdir()) == ["rank_00000.pt", "rank_00001.pt"]
        assert not (c / "model").exists() and not (c / "optimizer.pt").exists()
    assert (fsdp2 / "model" / "model.safetensors").is_file() and (fsdp2 / "model" / "tokenizer.json").is_file()
    assert all(r["loss"] < 7.5 for r in rows(fsdp2) if "loss" in r)


@pytest.mark.slow
def test_two_rank_checkpoint_loads_into_one_process(fsdp2, data):
    """2 -> 1 rank: the shards of both ranks make the full model and full-size AdamW moments."""
    import torch

    model, _, opt, sched = tiny(data, seed=5)
    ckpt = checkpoint.complete(fsdp2 / "checkpoints")[-1]
    state = checkpoint.load(ckpt, rt=Runtime(), model=model, optimizer=opt, scheduler=sched)
    assert state["step"] == 8 and state["consumed_samples"] == 8 * 16 and sched.last_epoch == 8
    exported, _ = modellib.load(fsdp2 / "model", "model")
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in model.state_dict().items())
    moments = opt.state_dict()["state"]
    params = [p for g in opt.param_groups for p in g["params"]]
    assert all(moments[i]["exp_avg"].shape == p.shape for i, p in enumerate(params))


@pytest.mark.slow
def test_a_full_copy_checkpoint_is_refused_by_fsdp_and_resumed_by_ddp(tmp_path, data):
    """The format ddp wrote before DCP (model/ + optimizer.pt): fsdp refuses it in one line; ddp
    (one process) resumes it and writes DCP from then on."""
    out = tmp_path / "full-copy"
    model, tok, opt, sched = tiny(data)
    one_step(model, opt, sched)
    checkpoint.save(out / "checkpoints", rt=Runtime(), model=model, tokenizer=tok, optimizer=opt, scheduler=sched,
                    state={"step": 1, "consumed_samples": 16, "tokens": 16 * 64}, keep=2)
    assert (out / "checkpoints" / checkpoint.name(1) / "optimizer.pt").is_file()
    p = run(fsdp_cmd(out, data, 2, "train.max_steps=2"), ok=False)
    assert p.returncode != 0 and "error: config key 'parallelism.data'" in p.stderr and "full-copy" in p.stderr
    assert not (out / "RESULT.json").exists()
    p = run(fsdp_cmd(out, data, 1, "parallelism.data=ddp", "train.max_steps=2", "eval.interval=0"))
    assert f"resumed from {out / 'checkpoints' / checkpoint.name(1)}" in p.stdout
    assert dcp_checkpoint.is_sharded(checkpoint.latest(out / "checkpoints"))


# ---- the loss curves (slow) --------------------------------------------------------------------
@pytest.mark.slow
def test_two_ranks_follow_the_one_process_curve(fsdp2, one):
    assert close(losses(fsdp2), losses(one)), (losses(fsdp2), losses(one))


@pytest.mark.slow
@pytest.mark.parametrize("saved_at, resumed_at", [(2, 1), (1, 2)])
def test_resume_on_another_number_of_ranks_continues_the_curve(tmp_path, data, fsdp2, one, saved_at, resumed_at):
    src = fsdp2 if saved_at == 2 else one
    out = resume_copy(src, tmp_path / f"resume-{saved_at}-to-{resumed_at}", 4)
    p = run(fsdp_cmd(out, data, resumed_at))
    assert f"resumed from {out / 'checkpoints' / checkpoint.name(4)}" in p.stdout
    res = result(out)
    assert res["metrics"]["resumed_from_step"] == 4 and res["runtime"]["world_size"] == resumed_at
    ref = [r for r in losses(src) if r[0] > 4]
    assert close(losses(out), ref), (losses(out), ref)
    assert abs(res["metrics"]["final_loss"] - result(src)["metrics"]["final_loss"]) <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("saved, resumed", [("ddp", "fsdp"), ("fsdp", "ddp")])
def test_resume_under_the_other_parallelism_continues_the_curve(tmp_path, data, fsdp2, ddp2, one, saved, resumed):
    """What `auto` does to a requeued job: a checkpoint written by 2 ranks under one mode resumes
    under the other (2 ranks), on the reference curve."""
    src = ddp2 if saved == "ddp" else fsdp2
    assert result(src)["metrics"]["parallelism"] == saved and close(losses(src), losses(one))
    out = resume_copy(src, tmp_path / f"{saved}-to-{resumed}", 4)
    p = run(fsdp_cmd(out, data, 2, f"parallelism.data={resumed}"))
    assert f"resumed from {out / 'checkpoints' / checkpoint.name(4)}" in p.stdout
    res = result(out)
    assert res["metrics"]["parallelism"] == resumed and res["metrics"]["resumed_from_step"] == 4
    ref = [r for r in losses(one) if r[0] > 4]
    assert close(losses(out), ref), (losses(out), ref)
    assert abs(res["metrics"]["final_loss"] - result(one)["metrics"]["final_loss"]) <= TOL


@pytest.mark.slow
def test_four_ranks_follow_the_curve_and_resume_at_two_and_one(tmp_path, data, fsdp2, fsdp4, one):
    """Save at 2 -> resume at 4; save at 4 -> resume at 2 and at 1 (micro-batch 16 / ranks: the same
    global batch of 16, the same samples in the same order)."""
    assert result(fsdp4)["runtime"]["world_size"] == 4 and close(losses(fsdp4), losses(one))
    ref = [r for r in losses(one) if r[0] > 4]
    for src, ranks in ((fsdp2, 4), (fsdp4, 2), (fsdp4, 1)):
        out = resume_copy(src, tmp_path / f"{src.name}-to-{ranks}", 4)
        run(fsdp_cmd(out, data, ranks))
        res = result(out)
        assert res["metrics"]["resumed_from_step"] == 4 and res["runtime"]["world_size"] == ranks
        assert close(losses(out), ref), (src.name, ranks, losses(out), ref)
        assert abs(res["metrics"]["final_loss"] - result(one)["metrics"]["final_loss"]) <= TOL


@pytest.mark.slow
def test_sigterm_then_rerun_with_fsdp(tmp_path, data, fsdp2):
    """SIGTERM to the torchrun job: every rank stops at one sharded checkpoint, PREEMPTED.json; the
    rerun (resume: auto) reaches the uninterrupted run's final loss."""
    out = tmp_path / "fsdp-preempted"
    cmd = fsdp_cmd(out, data, 2, "train.max_steps=8")
    proc = subprocess.Popen(cmd, env=env(), cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(lambda: (out / "metrics.jsonl").is_file() and any(r["step"] >= 2 for r in rows(out)), proc)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=300) == 1  # torchrun's own code; PREEMPTED.json tells a preemption
    marker = json.loads((out / "PREEMPTED.json").read_text())
    ckpt = checkpoint.latest(out / "checkpoints")
    assert marker["step"] == checkpoint.step_of(ckpt) < 8 and dcp_checkpoint.is_sharded(ckpt)
    run(cmd)
    assert result(out)["metrics"]["resumes"] == 1
    assert abs(result(out)["metrics"]["final_loss"] - result(fsdp2)["metrics"]["final_loss"]) <= TOL


@pytest.mark.slow
def test_sigkill_then_rerun_with_fsdp_and_async_checkpoints(tmp_path, data, fsdp2):
    """SIGKILL once the step-4 checkpoint is committed (written in the background): the rerun resumes
    from it and reaches the uninterrupted run's final loss; a half-written temp dir is ignored."""
    out = tmp_path / "fsdp-killed"
    cmd = fsdp_cmd(out, data, 2, "checkpoint.async_save=true")
    proc = subprocess.Popen(cmd, env=env(), cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out / "checkpoints" / checkpoint.name(4) / checkpoint.COMPLETE).is_file(), proc)
    finally:
        kill_tree(proc)  # torchrun and both ranks (each rank has a session of its own)
    (out / "checkpoints" / f"{checkpoint.TMP_PREFIX}{checkpoint.name(6)}" / "dcp").mkdir(parents=True)
    p = run(cmd)
    assert f"resumed from {out / 'checkpoints'}" in p.stdout
    assert abs(result(out)["metrics"]["final_loss"] - result(fsdp2)["metrics"]["final_loss"]) <= TOL
    assert not (out / "checkpoints" / f"{checkpoint.TMP_PREFIX}{checkpoint.name(6)}").exists()
