"""The nano3 pretrain and SFT trainers (recipes/nano3/stage{0_pretrain,1_sft}/train.py, recipes/nano3/training/).

Data: the data-prep scripts on their tiny configs, once per module. Runs: the trainers on
their tiny configs with fewer steps, as subprocesses (like torchrun starts them), into
folders under the test state folder. One uninterrupted pretrain run is the reference
that the killed/preempted runs must reproduce.

A 2-process gloo DDP run (torchrun) must match the single-process reference.
Slow (pytest -m slow): the full tiny pretrain + SFT with held-out exact match (~3 min on an
idle machine), and SIGTERM to a 2-process torchrun job.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recipes.nano3.training import checkpoint, optim, runtime
from recipes.nano3.training.data import IGNORE, BlendSampler

REPO = Path(__file__).resolve().parents[2]
TRAIN = {
    "pretrain": REPO / "recipes/nano3/stage0_pretrain/train.py",
    "sft": REPO / "recipes/nano3/stage1_sft/train.py",
}
PREP = {
    "pretrain": REPO / "recipes/nano3/stage0_pretrain/data_prep.py",
    "sft": REPO / "recipes/nano3/stage1_sft/data_prep.py",
}
# The tiny configs, shortened: 60 steps, checkpoints at 20, 40 (+ the final one), eval at 30 and 60.
SHORT = ["train.max_steps=60", "checkpoint.interval=20", "eval.interval=30", "log.interval=10"]
QUIET = ["log.wandb.mode=disabled"]
ROW_KEYS = {"step", "loss", "lr", "tokens_per_s", "elapsed"}


def env() -> dict:
    e = dict(os.environ)
    e.pop("RAY_ADDRESS", None)
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "WANDB_API_KEY"):
        e.pop(k, None)
    return e


def train_cmd(stage: str, out: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(TRAIN[stage]), "--config", "tiny", f"output_dir={out}", *overrides]


def run(cmd: list[str], ok: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=timeout, cwd=REPO)
    if ok:
        assert p.returncode == 0, f"rc={p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return p


def result(out: Path) -> dict:
    return json.loads((out / "RESULT.json").read_text())


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def losses(out: Path) -> list[tuple]:
    """What must be identical between runs: (step, loss, lr, valid_loss, grad_norm) per row."""
    return [(r["step"], r.get("loss"), r.get("lr"), r.get("valid_loss"), r.get("grad_norm")) for r in rows(out)]


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 600) -> None:
    end = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended (rc={proc.returncode}) before the condition"
        assert time.time() < end, "timed out"
        time.sleep(0.05)


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trainers")


@pytest.fixture(scope="module")
def pretrain_data(tmp_module) -> Path:
    out = tmp_module / "pretrain-data"
    run([sys.executable, str(PREP["pretrain"]), "--config", "tiny", f"output_dir={out}"])
    return out


@pytest.fixture(scope="module")
def sft_data(tmp_module, pretrain_data) -> Path:
    out = tmp_module / "sft-data"
    run([sys.executable, str(PREP["sft"]), "--config", "tiny", f"output_dir={out}",
         f"tokenizer_path={pretrain_data / 'tokenizer'}"])
    return out


@pytest.fixture(scope="module")
def reference(tmp_module, pretrain_data) -> Path:
    """An uninterrupted short pretrain run (W&B offline)."""
    out = tmp_module / "pretrain-reference"
    run(train_cmd("pretrain", out, f"data_path={pretrain_data}", *SHORT, "log.wandb.mode=offline"))
    return out


def load_script(stage: str):
    spec = importlib.util.spec_from_file_location(f"nano3_train_{stage}", TRAIN[stage])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- the scripts' runspecs: what `nemotron nano3 pretrain|sft` runs -----------------------------
@pytest.mark.parametrize("stage, name", [("pretrain", "nano3/pretrain"), ("sft", "nano3/sft")])
def test_runspec_launches_with_torchrun(stage, name):
    from pipeline.stages import PRETRAIN, SFT
    from nemotron_core.runspec import parse

    spec = parse(TRAIN[stage])
    assert (spec.name, spec.run.launch, spec.run.cmd, spec.config.default) == (name, "torchrun", None, "default")
    configs = ["default", "tiny"] + (["tiny_llama"] if stage == "pretrain" else [])  # the Llama for comparison
    assert spec.config.choices() == configs and spec.resources.gpus_per_node == 8
    assert {"pretrain": PRETRAIN, "sft": SFT}[stage].script_path == TRAIN[stage]


# ---- units: runtime, sampler, schedule, checkpoint discovery ------------------------------------
AUTO = {"device": "auto", "backend": "auto", "precision": "auto", "threads": "auto", "compile": False}


def test_runtime_cpu_single_process():
    rt = runtime.select(AUTO, cuda_devices=0, env={}, cpus=2)
    assert (rt.device, rt.backend, rt.amp_dtype, rt.threads, rt.world_size) == ("cpu", None, None, 2, 1)


def test_runtime_cpu_ddp_splits_cores_and_uses_gloo():
    env_ = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    rt = runtime.select(AUTO, cuda_devices=0, env=env_, cpus=2)
    assert (rt.device, rt.backend, rt.amp_dtype, rt.threads, rt.rank) == ("cpu", "gloo", None, 1, 1)


def test_runtime_gpu_path_nccl_bf16_device_per_local_rank():
    env_ = {"WORLD_SIZE": "16", "RANK": "11", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "8"}
    rt = runtime.select(AUTO, cuda_devices=8, env=env_, cpus=128)
    assert (rt.device, rt.backend, rt.amp_dtype, rt.threads) == ("cuda:3", "nccl", "bfloat16", 16)
    assert runtime.select({**AUTO, "precision": "fp32"}, cuda_devices=8, env=env_, cpus=128).amp_dtype is None
    assert runtime.select({**AUTO, "backend": "gloo"}, cuda_devices=8, env=env_, cpus=128).backend == "gloo"
    assert runtime.select(AUTO, cuda_devices=1, env={}, cpus=8).backend is None  # one process: no group


@pytest.mark.parametrize("rcfg, gpus, env_, needle", [
    ({"device": "cuda"}, 0, {}, "runtime.device"),
    ({"backend": "nccl"}, 0, {"WORLD_SIZE": "2"}, "runtime.backend"),
    ({}, 2, {"WORLD_SIZE": "4", "LOCAL_RANK": "3"}, "local rank 3"),
])
def test_runtime_errors(rcfg, gpus, env_, needle):
    from nemotron_core.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        runtime.select({**AUTO, **rcfg}, cuda_devices=gpus, env=env_, cpus=2)


def test_autocast_bf16_only_when_selected():
    import torch

    a = torch.randn(4, 4)
    with runtime.autocast(runtime.Runtime(amp_dtype=None)):
        assert (a @ a).dtype == torch.float32
    with runtime.autocast(runtime.Runtime(amp_dtype="bfloat16")):  # the GPU path's autocast, on CPU
        assert (a @ a).dtype == torch.bfloat16


def test_sampler_is_a_pure_function_of_the_sample_index():
    s = BlendSampler([1000, 300, 50], [0.5, 0.3, 0.2], seed=7)
    whole = s.take(0, 900)
    assert s.take(0, 400) + s.take(400, 500) == whole
    assert BlendSampler([1000, 300, 50], [0.5, 0.3, 0.2], seed=7).take(600, 300) == whole[600:]
    far = BlendSampler([1000, 300, 50], [0.5, 0.3, 0.2], seed=7).take(3 * BlendSampler.CHUNK + 5, 3)
    s.take(0, 3 * BlendSampler.CHUNK)
    assert s.take(3 * BlendSampler.CHUNK + 5, 3) == far  # resuming far ahead = running through
    assert BlendSampler([1000, 300, 50], [0.5, 0.3, 0.2], seed=8).take(0, 900) != whole


def test_sampler_weights_and_epochs():
    s = BlendSampler([10_000, 10_000], [0.75, 0.25], seed=1)
    picks = s.take(0, 20_000)
    share = sum(d == 0 for d, _ in picks) / len(picks)
    assert abs(share - 0.75) < 0.02
    one = BlendSampler([10], [1.0], seed=3)
    assert sorted(k for _, k in one.take(0, 10)) == list(range(10))  # an epoch visits every item once
    assert sorted(k for _, k in one.take(10, 10)) == list(range(10))
    assert one.take(0, 10) != one.take(10, 10)  # reshuffled per epoch


def test_warmup_cosine_schedule():
    """Linear warmup to lr, cosine down to lr x min_lr_ratio at max_steps; the step survives a state_dict."""
    import torch

    model = torch.nn.Linear(2, 2)
    ocfg = {"lr": 1.0, "min_lr_ratio": 0.1, "warmup_steps": 10, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.95,
            "eps": 1e-8}
    opt, sched = optim.build(model, ocfg, 110, "cpu")
    lrs = []
    for _ in range(111):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5) and lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.55) and lrs[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:110], lrs[11:111]))  # never up after warmup
    opt2, sched2 = optim.build(model, ocfg, 110, "cpu")
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_epoch == sched.last_epoch


def test_latest_ignores_half_written_checkpoints(tmp_path):
    good = tmp_path / checkpoint.name(10)
    good.mkdir()
    (good / checkpoint.COMPLETE).write_text("10\n")
    (tmp_path / checkpoint.name(20) / "model").mkdir(parents=True)  # killed before COMPLETE
    tmp = tmp_path / f"{checkpoint.TMP_PREFIX}{checkpoint.name(30)}"
    tmp.mkdir()
    (tmp / checkpoint.COMPLETE).write_text("30\n")  # killed before the rename
    (tmp_path / "step_40").mkdir()  # not our name
    assert checkpoint.latest(tmp_path) == good
    checkpoint.clean(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([good.name, "step_40"])


def test_default_config_arch_trains_and_round_trips_on_cpu(tmp_path, pretrain_data):
    """default.yaml's architecture (NemotronH: Mamba-2 / MoE / attention, GQA, padded vocab) at toy size:
    one step, save (NVIDIA's layout), load in plain transformers, same logits."""
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM

    from recipes.nano3.training import model as modellib
    from recipes.nano3.training.loop import next_batches, train_step
    from recipes.nano3.training.windows import WindowData

    mcfg = OmegaConf.to_container(OmegaConf.load(TRAIN["pretrain"].parent / "config/default.yaml"))["model"]
    mcfg.update(hybrid_override_pattern="MEM*E", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                head_dim=16, max_position_embeddings=64, mamba_num_heads=8, mamba_head_dim=16, ssm_state_size=16,
                n_groups=2, chunk_size=32, n_routed_experts=16, moe_intermediate_size=32,
                moe_shared_expert_intermediate_size=64)
    tok = modellib.load_tokenizer(pretrain_data / "tokenizer", "data_path")
    model = modellib.build(mcfg, tok, seed=0)
    assert model.config.model_type == "nemotron_h" and model.config.vocab_size % 128 == 0
    assert model.config.num_experts_per_tok == 6 and model.config.layers_block_type[:2] == ["linear_attention", "moe"]
    assert model.config.vocab_size >= len(tok)
    rt = runtime.Runtime()
    opt, sched = optim.build(model, {"lr": 1e-3, "min_lr_ratio": 0.1, "warmup_steps": 1, "weight_decay": 0.1,
                                     "beta1": 0.9, "beta2": 0.95, "eps": 1e-8}, 10, "cpu")
    batches, n = next_batches(WindowData(pretrain_data, "train", 32, 0, model.config.vocab_size), 0, rt=rt,
                              micro=4, accum=2)
    assert n == 2 * 4 * 32
    loss, norm = train_step(model, opt, sched, batches, rt=rt, grad_clip=1.0, num_targets=n)
    assert torch.isfinite(loss) and float(loss) > 5 and float(norm) > 0
    modellib.save(model, tok, tmp_path / "m")
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))
    with torch.no_grad():
        assert torch.equal(model(input_ids=batches[0].input_ids).logits, again(input_ids=batches[0].input_ids).logits)
    assert again.generation_config.eos_token_id == [0, 3]  # <|endoftext|>, <|im_end|>


# ---- SFT data: loss mask, packing ----------------------------------------------------------------
def test_sft_targets_are_assistant_tokens_only_and_packing_isolates_conversations(sft_data):
    import torch
    from transformers import AutoTokenizer

    from recipes.nano3.training import model as modellib
    from recipes.nano3.training.loop import loss_sum
    from recipes.nano3.training.packed import PackedData

    tok = AutoTokenizer.from_pretrained(str(sft_data / "tokenizer"))
    packed = PackedData(sft_data, "valid", seed=1, vocab_size=len(tok))
    b = packed.batch(0, 8)
    for ids, tgt, pos in zip(b.input_ids, b.targets, b.position_ids):
        text, learned = tok.decode(ids), tok.decode(tgt[tgt != IGNORE])
        # only answers + <|im_end|> are learned: no role names, no user text, no padding
        assert "user" not in learned and "What" not in learned and "<|pad|>" not in learned
        answers = [t.split("<|im_end|>")[0] for t in text.split("<|im_start|>assistant\n")[1:]]
        assert learned == "".join(f"{a}<|im_end|>" for a in answers)
        assert pos[0] == 0 and (pos[1:] == 0).sum() >= 1  # positions restart per conversation

    model = modellib.build({"arch": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                            "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 128},
                           tok, seed=0).eval()
    rt = runtime.Runtime()
    with torch.no_grad():
        # the trainer's loss = next-token CE summed over the positions the Parquet loss_mask marks, nothing else
        logits = model(input_ids=b.input_ids, position_ids=b.position_ids, use_cache=False).logits
        every = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), b.input_ids[:, 1:], reduction="none")
        mask = torch.stack([torch.tensor(packed.files[d].mask[k]) for d, k in packed.sampler.take(0, 8)])
        assert torch.allclose(loss_sum(model, b, rt), every[mask[:, 1:] == 1].sum(), rtol=1e-5)
        assert loss_sum(model, b, rt) < every.sum() / 3  # user text, roles and padding carry no loss
        # a packed conversation sees only itself: same logits as when run alone
        pos = b.position_ids[0]
        starts = (pos == 0).nonzero().flatten().tolist() + [pos.numel()]
        s, e = starts[1], starts[2]
        alone = model(input_ids=b.input_ids[:1, s:e], use_cache=False).logits[0]
        assert torch.allclose(logits[0, s:e], alone, atol=1e-5)


# ---- pretrain ----------------------------------------------------------------------------------
def test_pretrain_writes_hf_model_result_and_metrics(reference, pretrain_data):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(reference / "model"))
    tok = AutoTokenizer.from_pretrained(str(reference / "model"))
    assert model.config.model_type == "nemotron_h" and model.config.vocab_size == len(tok)
    assert type(model).__name__ == "NemotronHForCausalLM" and model.config.hybrid_override_pattern == "ME*E"
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= \
        {p.name for p in (reference / "model").iterdir()}
    assert tok.chat_template and tok.eos_token == "<|endoftext|>"

    res = result(reference)
    assert res["artifact"] == "nano3-pretrain-model" and res["model"]["path"] == "model"
    assert res["inputs"]["data"]["path"] == str(pretrain_data)
    data_in = res["inputs"]["data"]
    assert data_in["artifact"] == "nano3-pretrain-data" and len(data_in["sha256"]["RESULT.json"]) == 64
    m = res["metrics"]
    assert m["steps"] == 60 and m["tokens"] == 60 * 16 * 64 and m["final_valid_loss"] < 2.5
    assert res["runtime"] == {"world_size": 1, "device": "cpu", "backend": None, "precision": "float32",
                              "threads": runtime.usable_cpus()}

    metrics = rows(reference)
    train_rows = [r for r in metrics if "loss" in r]
    assert [r["step"] for r in train_rows] == list(range(10, 61, 10))
    assert all(ROW_KEYS <= set(r) for r in train_rows)
    assert [r["step"] for r in metrics if "valid_loss" in r] == [30, 60]
    assert train_rows[0]["loss"] > 5 and train_rows[-1]["loss"] < 2.0  # it learns (from ln(1024) ~ 6.9)
    assert train_rows[-1]["loss"] == pytest.approx(m["final_loss"], rel=0.2)

    ckpts = checkpoint.complete(reference / "checkpoints")
    assert [checkpoint.step_of(c) for c in ckpts] == [40, 60]  # keep: 2
    state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
    assert state["step"] == 60 and state["consumed_samples"] == 960
    assert {p.name for p in ckpts[-1].iterdir()} == {"dcp", "hf", "scheduler.pt", "rng", "trainer_state.json",
                                                     checkpoint.COMPLETE}  # DCP under ddp too
    wandb_dir = Path(os.environ["WANDB_DIR"])  # the test state folder, never $HOME
    assert any(wandb_dir.glob(f"wandb/offline-run-*-{state['wandb_id']}"))


def test_resume_after_sigkill_reaches_the_same_final_loss(tmp_path, reference, pretrain_data):
    out = tmp_path / "killed"
    cmd = train_cmd("pretrain", out, f"data_path={pretrain_data}", *SHORT, *QUIET)
    proc = subprocess.Popen(cmd, env=env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out / "checkpoints" / checkpoint.name(20) / checkpoint.COMPLETE).is_file(), proc)
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "RESULT.json").exists()
    # what a kill in the middle of a save leaves: neither may be taken as the latest checkpoint
    (out / "checkpoints" / checkpoint.name(50) / "model").mkdir(parents=True)
    (out / "checkpoints" / f"{checkpoint.TMP_PREFIX}{checkpoint.name(30)}").mkdir()
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 4')  # a row cut by the kill
    p = run(cmd)  # resume: auto (the tiny config's default)
    assert f"resumed from {out / 'checkpoints' / checkpoint.name(20)}" in p.stdout
    assert result(out)["metrics"]["final_loss"] == result(reference)["metrics"]["final_loss"]
    assert result(out)["metrics"]["final_valid_loss"] == result(reference)["metrics"]["final_valid_loss"]
    assert result(out)["metrics"]["resumed_from_step"] == 20
    assert losses(out) == losses(reference)  # every logged loss, bit for bit
    first = result(out)
    run(cmd)  # a finished run started again: nothing to train, same model and metrics
    again = result(out)
    assert again["metrics"]["steps_this_attempt"] == 0 and again["metrics"]["resumed_from_step"] == 60
    assert {k: again["metrics"][k] for k in ("final_loss", "final_valid_loss", "tokens")} == \
        {k: first["metrics"][k] for k in ("final_loss", "final_valid_loss", "tokens")}
    assert losses(out) == losses(reference)


def test_sigterm_saves_a_checkpoint_and_exits_75(tmp_path, pretrain_data):
    from nemotron_core.contract import RESUME_EXIT_CODE

    out = tmp_path / "preempted"
    proc = subprocess.Popen(train_cmd("pretrain", out, f"data_path={pretrain_data}", *SHORT, *QUIET), env=env(),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "metrics.jsonl").is_file() and any(r["step"] >= 10 for r in rows(out)), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == RESUME_EXIT_CODE, err[-3000:]
    assert "preempted: stopped by SIGTERM" in err and "Traceback" not in err
    marker = json.loads((out / "PREEMPTED.json").read_text())
    ckpt = checkpoint.latest(out / "checkpoints")
    assert marker["exit_code"] == RESUME_EXIT_CODE and marker["checkpoint"] == str(ckpt)
    assert 10 <= marker["step"] == checkpoint.step_of(ckpt) < 60
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["step"] == marker["step"] and state["consumed_samples"] == marker["step"] * 16
    assert (ckpt / "dcp" / ".metadata").is_file() and (ckpt / "rng" / "rank_00000.pt").is_file()
    assert not (out / "RESULT.json").exists() and not (out / "model").exists()


# ---- SFT ---------------------------------------------------------------------------------------
def test_sft_from_the_pretrained_model_lowers_valid_loss(tmp_path, reference, sft_data):
    from transformers import AutoModelForCausalLM

    from recipes.nano3.training import model as modellib
    from recipes.nano3.training.loop import evaluate
    from recipes.nano3.training.packed import PackedData

    out = tmp_path / "sft"
    run(train_cmd("sft", out, f"data_path={sft_data}", f"base_model={reference}", "train.max_steps=60",
                  "eval.interval=30", "log.interval=10", *QUIET))
    res = result(out)
    assert res["artifact"] == "nano3-sft-model"
    assert res["inputs"]["base_model"]["path"] == str(reference)
    assert res["inputs"]["base_model"]["artifact"] == "nano3-pretrain-model"
    assert res["inputs"]["data"]["artifact"] == "nano3-sft-data"
    assert [r["step"] for r in rows(out) if "valid_loss" in r] == [30, 60]

    base, _ = modellib.load(reference, "base_model")
    valid = PackedData(sft_data, "valid", seed=1235, vocab_size=base.config.vocab_size)  # the trainer's (seed + 1)
    base_loss = evaluate(base, valid, rt=runtime.Runtime(), batches=8, micro=16)
    tuned = AutoModelForCausalLM.from_pretrained(str(out / "model"))
    assert evaluate(tuned, valid, rt=runtime.Runtime(), batches=8, micro=16) == pytest.approx(
        res["metrics"]["final_valid_loss"], rel=1e-5)
    assert res["metrics"]["final_valid_loss"] < base_loss - 1.0, (base_loss, res["metrics"])


# ---- errors: one line, exit 2, no RESULT.json ----------------------------------------------------
@pytest.mark.parametrize("override, needle", [
    ("train.max_step=5", "unknown config key 'train.max_step' (did you mean 'max_steps'?)"),
    ("optim.lr=-1", "config key 'optim.lr'"),
    ("train.global_batch_size=20", "multiple of train.micro_batch_size"),
    ("resume=sometimes", "config key 'resume'"),
    ("model.hiden_size=64", "unknown config key 'model.hiden_size' for arch 'nemotron_h' (did you mean 'hidden_size'?)"),
    ("model.arch=lama", "config key 'model.arch'"),
    ("model.hybrid_override_pattern=MX*E", "config key 'model.hybrid_override_pattern': 'MX*E' must be"),
    ("model.num_experts_per_tok=9", "config key 'model.num_experts_per_tok': 9 must be <= model.n_routed_experts"),
    ("model.tie_word_embeddings=true", "config key 'model.tie_word_embeddings'"),
    ("train.moe_aux_loss_coef=-1", "config key 'train.moe_aux_loss_coef'"),
    ("parallelism.expert=0", "config key 'parallelism.expert'"),
    ("train.seq_length=512", "max_position_embeddings"),
    ("data_path=/nonexistent/data", "data_path"),
])
def test_pretrain_user_errors_exit_2(tmp_path, capsys, pretrain_data, override, needle):
    from recipes.nano3.training import entry

    out = tmp_path / "out"
    argv = ["--config", "tiny", f"output_dir={out}", f"data_path={pretrain_data}", *QUIET, override]
    assert entry.run(load_script("pretrain").main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not (out / "RESULT.json").exists()


def test_sft_tokenizer_mismatch_exit_2(tmp_path, capsys, reference, sft_data):
    import shutil

    from recipes.nano3.common import tokenizer as toks
    from recipes.nano3.training import entry

    other = tmp_path / "other-sft-data"
    shutil.copytree(sft_data, other)
    shutil.rmtree(other / "tokenizer")
    texts = [f"{a} plus {b} is {a + b}. Zorland has {a} rivers." for a in range(50) for b in range(20)]
    toks.save(toks.train_bpe(texts, vocab_size=400), other / "tokenizer")
    capsys.readouterr()  # the BPE's own warning (a tiny corpus)
    out = tmp_path / "out"
    argv = ["--config", "tiny", f"output_dir={out}", f"data_path={other}", f"base_model={reference}", *QUIET]
    assert entry.run(load_script("sft").main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tokenizer mismatch" in err[0], err
    assert not out.exists()


# ---- the full tiny pipeline (slow); DDP through torchrun ------------------------------------------
def exact_match(model_dir: Path, world_json: Path, splits=("valid", "test")) -> tuple[float, int]:
    """Greedy chat answers to the world's held-out questions (in no training data), checked like RL rewards."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipes.nano3.common.answers import answer_check
    from recipes.nano3.common.chat import render
    from recipes.nano3.common.world import World, WorldConfig

    world = World(WorldConfig.from_dict(json.loads(world_json.read_text())["config"]))
    items = [it for split in splits for it in world.questions(split)]
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    correct = 0
    for i in range(0, len(items), 64):
        chunk = items[i:i + 64]
        prompts = [render([{"role": "user", "content": it.question}], add_generation_prompt=True)[0] for it in chunk]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=8, do_sample=False)
        for it, seq in zip(chunk, out[:, enc["input_ids"].shape[1]:]):
            correct += answer_check(tok.decode(seq), it.answer)
    return correct / len(items), len(items)


@pytest.mark.slow
def test_tiny_pretrain_then_sft_improves_heldout_exact_match(tmp_path, pretrain_data, sft_data):
    pre, sft = tmp_path / "pretrain", tmp_path / "sft"
    t0 = time.time()
    run(train_cmd("pretrain", pre, f"data_path={pretrain_data}", *QUIET), timeout=3600)  # ~1.5-2 min when idle
    t1 = time.time()
    run(train_cmd("sft", sft, f"data_path={sft_data}", f"base_model={pre}", *QUIET), timeout=3600)  # ~1 min
    t2 = time.time()
    base_em, n = exact_match(pre / "model", pretrain_data / "world.json")
    sft_em, _ = exact_match(sft / "model", pretrain_data / "world.json")
    print(f"\npretrain {t1 - t0:.0f}s final_loss {result(pre)['metrics']['final_loss']:.3f}; "
          f"sft {t2 - t1:.0f}s final_loss {result(sft)['metrics']['final_loss']:.3f}; "
          f"held-out exact match on {n} valid+test questions: pretrain {base_em:.3f} -> sft {sft_em:.3f}")
    assert sft_em >= base_em + 0.05  # seen: 0.000 -> 0.145 (a 0.4M-param model; held-out items are unseen)


def torchrun_cmd(out: Path, pretrain_data: Path) -> list[str]:
    """2 gloo ranks x micro-batch 8: the reference's global batch (16), so the same samples per step."""
    return [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", "2",
            str(TRAIN["pretrain"]), "--config", "tiny", f"output_dir={out}", f"data_path={pretrain_data}", *SHORT,
            *QUIET, "train.micro_batch_size=8"]


def test_ddp_two_processes_gloo(tmp_path, reference, pretrain_data):
    out = tmp_path / "ddp"
    run(torchrun_cmd(out, pretrain_data))
    res = result(out)
    assert res["runtime"]["world_size"] == 2 and res["runtime"]["backend"] == "gloo"
    assert res["runtime"]["threads"] == max(1, runtime.usable_cpus() // 2)
    assert res["metrics"]["grad_accum_steps"] == 1
    ckpt = checkpoint.latest(out / "checkpoints")
    assert sorted(p.name for p in (ckpt / "rng").iterdir()) == ["rank_00000.pt", "rank_00001.pt"]
    # The same samples and update as one process, up to float summation order: the first logged losses
    # agree to ~1e-6. MoE top-k routing is discrete, so once summation order flips one token's expert
    # the runs drift apart (seen on the tiny data at step 60: 1.9e-3), hence the looser final check.
    ddp = [r["loss"] for r in rows(out) if "loss" in r]
    one = [r["loss"] for r in rows(reference) if "loss" in r]
    assert len(ddp) == len(one) == 6 and ddp[:2] == pytest.approx(one[:2], abs=1e-4)
    assert res["metrics"]["final_loss"] == pytest.approx(result(reference)["metrics"]["final_loss"], abs=2e-2)


@pytest.mark.slow
def test_sigterm_under_torchrun_stops_every_rank_at_one_checkpoint(tmp_path, pretrain_data):
    """What the local executor and Slurm do: SIGTERM to the whole job. Every rank stops at the same
    step, one checkpoint, PREEMPTED.json; torchrun itself exits 1, whatever its workers return."""
    out = tmp_path / "ddp-preempted"
    proc = subprocess.Popen(torchrun_cmd(out, pretrain_data), env=env(), cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (out / "metrics.jsonl").is_file() and any(r["step"] >= 10 for r in rows(out)), proc)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=300) == 1
    marker = json.loads((out / "PREEMPTED.json").read_text())
    ckpt = checkpoint.latest(out / "checkpoints")
    assert marker["step"] == checkpoint.step_of(ckpt) and len(list((ckpt / "rng").iterdir())) == 2
    assert not (out / "RESULT.json").exists()


def test_progress_line_shows_what_the_row_has():
    from recipes.nano3.training.metrics import progress_line

    row = {"step": 580, "loss": 0.83712, "lr": 0.0024356, "tokens_per_s": 1027.6, "elapsed": 508.3, "samples": 9280}
    assert progress_line(row) == "step 580: loss 0.8371 lr 2.44e-03 1028 tok/s 508s"
    assert progress_line({"step": 600, "valid_loss": 0.9}) == "step 600: valid_loss 0.9000"


def test_wandb_trouble_never_stops_training(capsys):
    from recipes.nano3.training.metrics import init_wandb

    class HeldThenFree:  # the id is held by a killed attempt's W&B service for a while
        def __init__(self, held: int):
            self.calls, self.held = 0, held

        def init(self, **kwargs):
            self.calls += 1
            if self.calls <= self.held:
                raise RuntimeError("run ID a25eeeb4 is in use")
            return "run"

    w = HeldThenFree(held=1)
    assert init_wandb(w, id="a25eeeb4") == "run" and w.calls == 2
    w = HeldThenFree(held=99)
    assert init_wandb(w, retries=0, id="a25eeeb4") is None and w.calls == 1
    assert "warning: W&B off for this run" in capsys.readouterr().out
