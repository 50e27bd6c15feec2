"""The nano3 RL trainer (stage2_rl/train.py, recipes/nano3/rl/) and eval (stage3_eval/eval.py,
recipes/nano3/evaluation/).

Fixtures (once per module): the three data-prep scripts on their tiny configs (pretrain/SFT
smaller via overrides), a short tiny pretrain and a short SFT run: a model that answers in
the chat format, enough for the mechanics. RL runs are short (8 steps of 8 prompts x 4
samples) with a private local Ray head each; they run as subprocesses in their own session
(process group), as the local executor starts jobs, so SIGKILL/SIGTERM hit the Ray head too.
The unmarked tests take ~2.5-3 min on an idle 2-core machine (3-4x that while other jobs run).
Ray: every RL run starts its own head (ray.init without an address, temp dir under the state
folder); its ports are OS-assigned (ephemeral range), so they never meet the services' fixed ports.

Slow (pytest -m slow): the full tiny pipeline pretrain -> SFT -> RL -> eval x 3 on 3 seeds with
the stage gains of issue #24 (held-out exact match, seed means: SFT >= pretrain + 25 points,
RL >= SFT + 5 points) and the README's "What the tiny pipeline learns" table.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recipes.nano3.training import checkpoint
from tests.recipes.test_trainers import PREP, TRAIN, env, result, rows, run, wait_for

REPO = Path(__file__).resolve().parents[2]
RL = REPO / "recipes/nano3/stage2_rl/train.py"
EVAL = REPO / "recipes/nano3/stage3_eval/eval.py"
QUIET = ["log.wandb.mode=disabled"]
# The tiny RL config, shortened: 8 steps of 8 prompts x 4 samples, checkpoints at 3 and 6, eval at 0/4/8;
# lr 1e-3 (the config's 1e-4 over 8 steps moved no token probability past the clip, so clip_frac stayed 0).
SHORT = ["train.max_steps=8", "rollout.prompts_per_step=8", "rollout.samples_per_prompt=4", "eval.interval=4",
         "eval.prompts=16", "log.interval=1", "checkpoint.interval=3", "optim.lr=1e-3", *QUIET]
RL_ROW_KEYS = {"step", "reward", "accuracy", "format", "kl", "response_length", "loss", "clip_frac", "lr",
               "grad_norm", "rollout_s", "update_s", "elapsed"}
LEARNING_KEYS = ("step", "reward", "accuracy", "kl", "loss", "response_length", "clip_frac", "grad_norm",
                 "valid_reward", "valid_accuracy")


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"nano3_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rl_cmd(out: Path, rl_data: Path, base: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(RL), "--config", "tiny", f"output_dir={out}", f"data_path={rl_data}",
            f"base_model={base}", *overrides]


def eval_cmd(out: Path, model: Path, data: dict, *overrides: str) -> list[str]:
    return [sys.executable, str(EVAL), "--config", "tiny", f"output_dir={out}", f"model_path={model}",
            f"pretrain_data={data['pretrain']}", f"rl_data={data['rl']}", *overrides]


def start(cmd: list[str]) -> subprocess.Popen:
    """A job in its own session (like the local executor): the Ray head it starts shares its group."""
    return subprocess.Popen(cmd, env=env(), cwd=REPO, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def group_gone(pgid: int, timeout: float = 30) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def assert_user_error(script: Path, argv: list[str], capsys, out: Path, needle: str) -> None:
    """main() under entry.run: exit 2, one line `error: ...` naming the problem, nothing written."""
    from recipes.nano3.training import entry

    capsys.readouterr()
    assert entry.run(load_script(script).main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not out.exists()


def learning(out: Path) -> list[tuple]:
    """What must be identical between an uninterrupted and a resumed run."""
    return [tuple(r.get(k) for k in LEARNING_KEYS) for r in rows(out)]


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rl_eval")


@pytest.fixture(scope="module")
def data(tmp_module) -> dict:
    out = {k: tmp_module / f"{k}-data" for k in ("pretrain", "sft", "rl")}
    run([sys.executable, str(PREP["pretrain"]), "--config", "tiny", f"output_dir={out['pretrain']}",
         "sources.synthetic.documents=3000", "num_shards=2", "tokenizer.sample_documents=2000"])
    tok = f"tokenizer_path={out['pretrain'] / 'tokenizer'}"
    run([sys.executable, str(PREP["sft"]), "--config", "tiny", f"output_dir={out['sft']}", tok,
         "sources.synthetic.conversations=4000"])
    run([sys.executable, str(REPO / "recipes/nano3/stage2_rl/data_prep.py"), "--config", "tiny",
         f"output_dir={out['rl']}", tok])
    return out


@pytest.fixture(scope="module")
def models(tmp_module, data) -> dict:
    """A short tiny pretrain, then a short SFT on it."""
    pre, sft = tmp_module / "pretrain-model", tmp_module / "sft-model"
    common = ["eval.interval=0", "checkpoint.interval=0", "log.interval=50", *QUIET]
    run([sys.executable, str(TRAIN["pretrain"]), "--config", "tiny", f"output_dir={pre}",
         f"data_path={data['pretrain']}", "train.max_steps=300", *common])
    # lr 3e-4 (the tiny config's is 6e-4 over 300 steps): at 6e-4 x 150 steps the policy is peaked enough that
    # 8 short RL steps never move a token's ratio past the clip (seen: clip_frac 0 on every step)
    run([sys.executable, str(TRAIN["sft"]), "--config", "tiny", f"output_dir={sft}", f"data_path={data['sft']}",
         f"base_model={pre}", "train.max_steps=150", "optim.lr=3e-4", *common])
    return {"pretrain": pre, "sft": sft}


@pytest.fixture(scope="module")
def rl_reference(tmp_module, data, models) -> Path:
    """An uninterrupted short RL run."""
    out = tmp_module / "rl-reference"
    run(rl_cmd(out, data["rl"], models["sft"], *SHORT))
    return out


@pytest.fixture(scope="module")
def sft_eval(tmp_module, data, models) -> Path:
    out = tmp_module / "eval-sft"
    run(eval_cmd(out, models["sft"], data))
    return out


# ---- units: reward, advantages, loss, sampling, prompts ------------------------------------------
def test_reward_is_the_answer_check_plus_a_format_reward():
    from recipes.nano3.rl.reward import Score, score, summarize

    assert score("7<|im_end|>", "7", 0.1).reward == pytest.approx(1.1)
    assert score(" -3<|im_end|>\n", "-3", 0.1) .formatted
    # the fact restated (what SFT teaches): its last integer / last words are the answer
    assert score("3 + 4 = 7<|im_end|>", "7", 0.1) == Score(pytest.approx(1.1), True, True)
    assert score("3 + 4 = 8<|im_end|>", "7", 0.1) == Score(pytest.approx(0.1), False, True)
    assert score("Zoria has 7 rivers.<|im_end|>", "7", 0.1).correct
    assert score("Bob lives in Zoria. The capital of Zoria is Kelmo.<|im_end|>", "Kelmo", 0.1).correct
    assert not score("Kelmo is the capital of Zoria.<|im_end|>", "Kelmo", 0.1).correct  # one answer: the last
    assert not score("The capital is Kelmoton<|im_end|>", "Kelmo", 0.1).correct  # whole words
    s = score("3 + 4 = 7\n3 + 5 =", "7", 0.1)  # right, but the turn runs on past the line
    assert (s.correct, s.formatted, s.reward) == (True, False, 1.0)
    assert not score("red<|im_end|>", "7", 0.1).formatted  # an integer question needs an integer
    assert score("Kelmo<|im_end|>", "Kelmo", 0.5).reward == pytest.approx(1.5)
    assert score("Kelmo", "Kelmo", 0.5).reward == 1.0  # never closed the turn
    assert score("8<|im_end|>", "7", 0.1).reward == pytest.approx(0.1)
    stats = summarize([score("7<|im_end|>", "7", 0.1), score("8", "7", 0.1)], [2, 16])
    assert stats == pytest.approx({"reward": 0.55, "accuracy": 0.5, "format": 0.5, "response_length": 9.0})


def test_every_restated_sft_reply_is_right_for_its_reference_and_wrong_for_others():
    """SFT replies that restate the fact (sources.synthetic.restate) and the reward parser agree: each
    world item's reply is judged right for its own answer and wrong for every other answer of its kind."""
    import random

    from recipes.nano3.common.answers import answer_check
    from recipes.nano3.common.world import KINDS, World, WorldConfig

    world = World(WorldConfig())
    for kind in KINDS:
        items = world.items[kind]
        answers = sorted({it.answer for it in items})
        for it in items:
            assert answer_check(it.reply(True) + "<|im_end|>", it.answer), it
            wrong = next(a for a in answers if a != it.answer)
            assert not answer_check(it.reply(True) + "<|im_end|>", wrong), (it, wrong)
            assert it.reply(False) == it.answer
    assert world.items["capital"][0].reply(True).startswith("The capital of ")
    assert world.items["sequence"][0].reply(True) == world.items["sequence"][0].answer  # restating copies every term
    replies = {it.reply(True) for kind in KINDS for it in world.items[kind]}
    chats = [world.conversation(random.Random(i), "train", restate=True) for i in range(50)]
    assert all(m["content"] in replies for chat in chats for m in chat if m["role"] == "assistant")
    assert any(m["content"].startswith("The ") for chat in chats for m in chat)


def test_group_normalized_advantages():
    import torch

    from recipes.nano3.rl.grpo import advantages

    a = advantages(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.1, 1.1, 1.1, 1.1]), group=4)
    assert a[:4].tolist() == pytest.approx([3 ** 0.5, -(3 ** -0.5), -(3 ** -0.5), -(3 ** -0.5)], rel=1e-4)
    assert a[:4].sum() == pytest.approx(0, abs=1e-5)
    assert a[4:].tolist() == [0.0, 0.0, 0.0, 0.0]  # all equal: no signal


def test_loss_clips_the_ratio_and_penalizes_kl():
    import torch

    from recipes.nano3.rl.grpo import loss_terms

    mask = torch.ones(1, 3)
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.5]]))
    same = loss_terms(logp, logp, logp, torch.tensor([2.0]), mask, clip_eps=0.2, kl_coef=0.1)
    assert same[0].item() == pytest.approx(-6.0) and same[1].item() == pytest.approx(0) and same[2].item() == 0
    # ratio 2 with a positive advantage: the objective is capped at (1 + eps) * A, and those tokens count as clipped
    old = torch.log(torch.tensor([[0.25, 0.25, 0.25]]))
    loss, kl, clipped = loss_terms(logp, old, logp, torch.tensor([1.0]), mask, clip_eps=0.2, kl_coef=0.0)
    assert loss.item() == pytest.approx(-3 * 1.2) and clipped.item() == 3
    # KL (k3) to the reference: > 0 when the policy moved away, added with kl_coef
    ref = torch.log(torch.tensor([[0.25, 0.25, 0.25]]))
    loss, kl, _ = loss_terms(logp, logp, ref, torch.tensor([0.0]), mask, clip_eps=0.2, kl_coef=0.5)
    per_token = 0.5 - torch.log(torch.tensor(0.5)).item() - 1
    assert kl.item() == pytest.approx(3 * per_token) and loss.item() == pytest.approx(0.5 * 3 * per_token)


def test_batch_masks_exactly_the_completion_tokens():
    import torch

    from recipes.nano3.rl.grpo import make_batch

    b = make_batch([[2, 5, 6], [2, 7]], [[9, 3], [8, 8, 3]], torch.tensor([1.0, -1.0]), pad_id=1)
    assert b.input_ids.tolist() == [[2, 5, 6, 9, 3], [2, 7, 8, 8, 3]]
    targets = [[t for t, m in zip(row[1:], mrow) if m] for row, mrow in zip(b.input_ids.tolist(), b.mask.tolist())]
    assert targets == [[9, 3], [8, 8, 3]]


def test_sampling_cuts_at_the_first_stop_and_is_seeded(models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipes.nano3.common.chat import render
    from recipes.nano3.rl.sampling import completions

    model = AutoModelForCausalLM.from_pretrained(str(models["sft"] / "model")).eval()
    tok = AutoTokenizer.from_pretrained(str(models["sft"] / "model"))
    prompts = [tok(render([{"role": "user", "content": q}], add_generation_prompt=True)[0],
                   add_special_tokens=False)["input_ids"] for q in ("What is 2 + 3?", "What comes next: 1, 3, 5?")]
    kw = dict(n=5, max_new_tokens=10, pad_id=tok.pad_token_id, stop_ids=[0, 3])
    a, b = completions(model, prompts, seed=3, **kw), completions(model, prompts, seed=3, **kw)
    assert a == b and len(a) == 10
    assert all((c[-1] in (0, 3) and 0 not in c[:-1] and 3 not in c[:-1]) or len(c) == 10 for c in a)
    greedy = completions(model, prompts, n=1, greedy=True, max_new_tokens=10, pad_id=1, stop_ids=[0, 3], batch_size=1)
    assert greedy == completions(model, prompts, n=1, greedy=True, max_new_tokens=10, pad_id=1, stop_ids=[0, 3])


def test_prompts_of_a_step_are_a_pure_function_of_the_step(data):
    from recipes.nano3.rl.prompts import Prompts

    p = Prompts(data["rl"], "train", vocab_size=10_000)
    assert p.sample(1, 5, 32) == Prompts(data["rl"], "train", vocab_size=10_000).sample(1, 5, 32)
    assert p.sample(1, 5, 32) != p.sample(1, 6, 32)
    held = {r["id"] for r in Prompts(data["rl"], "valid", vocab_size=10_000).rows}
    assert held and not held & {r["id"] for r in p.rows}  # held-out prompts are never trained on


# ---- RL ----------------------------------------------------------------------------------------
def test_rl_writes_hf_model_result_metrics_and_checkpoints(rl_reference, data, models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(rl_reference / "model"))
    tok = AutoTokenizer.from_pretrained(str(rl_reference / "model"))
    assert model.config.vocab_size == len(tok) and tok.chat_template
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= \
        {p.name for p in (rl_reference / "model").iterdir()}

    res = result(rl_reference)
    assert res["artifact"] == "nano3-rl-model" and res["name"] == "nano3/rl" and res["model"]["path"] == "model"
    assert res["inputs"]["base_model"]["path"] == str(models["sft"])
    assert res["inputs"]["base_model"]["artifact"] == "nano3-sft-model"
    assert res["inputs"]["data"]["artifact"] == "nano3-rl-data"
    m = res["metrics"]
    assert m["steps"] == 8 and m["samples"] == 64 and m["group_size"] == 4 and m["actors"] == 2
    for key in ("final_reward", "final_accuracy", "final_kl", "final_response_length", "valid_reward",
                "valid_accuracy", "valid_reward_start", "valid_accuracy_start"):
        assert isinstance(m[key], float), key

    metrics = rows(rl_reference)
    train_rows = [r for r in metrics if "reward" in r]
    assert [r["step"] for r in train_rows] == list(range(1, 9))
    assert all(RL_ROW_KEYS <= set(r) for r in train_rows)
    assert [r["step"] for r in metrics if "valid_reward" in r] == [0, 4, 8]
    assert all(0 <= r["accuracy"] <= 1 and r["kl"] >= 0 and 1 <= r["response_length"] <= 20 for r in train_rows)
    # step 1 samples from the reference itself (its second minibatch follows one update): KL ~ 0, then it grows
    assert train_rows[0]["kl"] < 1e-3 and max(r["kl"] for r in train_rows[1:]) > train_rows[0]["kl"]
    assert any(r["clip_frac"] > 0 for r in train_rows)  # minibatches: 2 -> the second step sees ratio != 1

    ckpts = checkpoint.complete(rl_reference / "checkpoints")
    assert [checkpoint.step_of(c) for c in ckpts] == [6, 8]  # keep: 2
    assert {p.name for p in ckpts[-1].iterdir()} == {"model", "optimizer.pt", "rng", "trainer_state.json",
                                                     checkpoint.COMPLETE}
    state = json.loads((ckpts[-1] / "trainer_state.json").read_text())
    assert state["step"] == 8 and state["samples"] == 64


def test_rl_resume_after_sigkill_matches_the_uninterrupted_run(tmp_path, rl_reference, data, models):
    out = tmp_path / "killed"
    cmd = rl_cmd(out, data["rl"], models["sft"], *SHORT)
    proc = start(cmd)
    try:
        wait_for(lambda: (out / "checkpoints" / checkpoint.name(3) / checkpoint.COMPLETE).is_file(), proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the node dies: the driver and its Ray head
        proc.communicate()
    assert group_gone(proc.pid)
    assert not (out / "RESULT.json").exists()
    p = run(cmd)
    resumed = int(p.stdout.split("resumed from ")[1].split("step_")[1][:8])
    assert resumed in (3, 6)
    assert result(out)["metrics"]["resumed_from_step"] == resumed and result(out)["metrics"]["resumes"] == 1
    assert learning(out) == learning(rl_reference)  # same prompts, samples, rewards, updates: bit for bit
    assert result(out)["metrics"]["valid_reward"] == result(rl_reference)["metrics"]["valid_reward"]


def test_rl_sigterm_saves_a_checkpoint_and_exits_75(tmp_path, data, models):
    from nemotron_core.contract import RESUME_EXIT_CODE

    out = tmp_path / "preempted"
    proc = start(rl_cmd(out, data["rl"], models["sft"], *SHORT))
    try:
        wait_for(lambda: (out / "metrics.jsonl").is_file() and any(r["step"] >= 2 for r in rows(out)), proc)
        os.killpg(proc.pid, signal.SIGTERM)  # what the local executor and Slurm do: the whole job
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == RESUME_EXIT_CODE, err[-3000:]
    assert "preempted: stopped by SIGTERM" in err and "Traceback" not in err, err[-3000:]
    marker = json.loads((out / "PREEMPTED.json").read_text())
    ckpt = checkpoint.latest(out / "checkpoints")
    assert marker["exit_code"] == RESUME_EXIT_CODE and marker["checkpoint"] == str(ckpt)
    assert 2 <= marker["step"] == checkpoint.step_of(ckpt) < 8
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == marker["step"]
    assert not (out / "RESULT.json").exists() and not (out / "model").exists()
    assert group_gone(proc.pid)  # no Ray process left behind


@pytest.mark.ray
def test_rl_runs_as_a_job_on_the_local_ray_head(tmp_path, ray_head, data, models):
    """launch = "ray": submitted to a running head, the trainer joins it (RAY_ADDRESS) instead of starting one."""
    import shlex

    from ray.job_submission import JobStatus, JobSubmissionClient

    from nemotron_core.paths import state_env

    out = tmp_path / "on-head"
    cmd = rl_cmd(out, data["rl"], models["sft"], *SHORT, "train.max_steps=2", "eval.interval=0",
                 "checkpoint.interval=0")
    client = JobSubmissionClient(ray_head)
    keep = {k: os.environ[k] for k in state_env() if k in os.environ}
    job = client.submit_job(entrypoint=shlex.join(cmd), runtime_env={"env_vars": keep})
    end = time.time() + 600
    while client.get_job_status(job) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        assert time.time() < end, client.get_job_logs(job)[-3000:]
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED, logs[-3000:]
    res = result(out)
    assert res["metrics"]["steps"] == 2 and (out / "model" / "model.safetensors").is_file()
    assert [r["step"] for r in rows(out) if "reward" in r] == [1, 2]


@pytest.mark.parametrize("override, needle", [
    ("rollout.actor=3", "unknown config key 'rollout.actor' (did you mean 'actors'?)"),
    ("rollout.samples_per_prompt=1", "config key 'rollout.samples_per_prompt'"),
    ("grpo.minibatches=3", "grpo.minibatches"),
    ("optim.lr=0", "config key 'optim.lr'"),
    ("grpo.clip_eps=2", "config key 'grpo.clip_eps'"),
    ("data_path=/nonexistent/rl-data", "data_path"),
    ("base_model=/nonexistent/sft", "base_model"),
    ("rollout.max_new_tokens=500", "max_position_embeddings"),
])
def test_rl_user_errors_exit_2(tmp_path, capsys, data, models, override, needle):
    out = tmp_path / "out"
    argv = ["--config", "tiny", f"output_dir={out}", f"data_path={data['rl']}", f"base_model={models['sft']}",
            *QUIET, override]
    assert_user_error(RL, argv, capsys, out, needle)


def test_rl_data_with_another_tokenizer_exit_2(tmp_path, capsys, data, models):
    import shutil

    from recipes.nano3.common import tokenizer as toks

    other = tmp_path / "other-rl-data"
    shutil.copytree(data["rl"], other)
    shutil.rmtree(other / "tokenizer")
    texts = [f"{a} plus {b} is {a + b}. Zorland has {a} rivers." for a in range(50) for b in range(20)]
    toks.save(toks.train_bpe(texts, vocab_size=400), other / "tokenizer")
    out = tmp_path / "out"
    argv = ["--config", "tiny", f"output_dir={out}", f"data_path={other}", f"base_model={models['sft']}", *QUIET]
    assert_user_error(RL, argv, capsys, out, "tokenizer mismatch")


# ---- eval --------------------------------------------------------------------------------------
def test_eval_writes_results_samples_lm_eval_and_result(sft_eval, models):
    res = json.loads((sft_eval / "results.json").read_text())
    m = res["metrics"]
    assert res["model"]["artifact"] == "nano3-sft-model" and res["model"]["path"] == str(models["sft"])
    # the SFT model saw only chats: its pretrain-text perplexity is high, but it is exp(the trainer's loss)
    assert m["perplexity"] == pytest.approx(math.exp(m["valid_loss"])) and m["perplexity"] > 1
    for key in ("exact_match", "completion_exact_match", "rl_reward", "rl_accuracy", "rl_format",
                "lmeval_qa_exact_match", "lmeval_qa_mc_acc"):
        assert 0 <= m[key] <= 1.1, key
    assert m["rl_reward"] == pytest.approx(m["rl_accuracy"] + 0.1 * m["rl_format"])
    assert set(res["exact_match_by_task"]) >= {"arith", "sequence", "capital"}
    assert m["exact_match_n"] == res["counts"]["qa"] > 50 and res["counts"]["rl"] > 50
    # lm-eval's exact match and our answer check grade the same greedy answers
    assert m["lmeval_qa_exact_match"] == pytest.approx(m["exact_match"], abs=0.05)

    samples = [json.loads(line) for line in (sft_eval / "samples.jsonl").read_text().splitlines()]
    assert {s["kind"] for s in samples} == {"qa", "completion", "rl"}
    qa = [s for s in samples if s["kind"] == "qa"]
    assert sum(s["correct"] for s in qa) / len(qa) == pytest.approx(m["exact_match"])
    tasks = sorted(p.name for p in (sft_eval / "lm_eval" / "tasks").iterdir())
    assert tasks == ["nano3_qa.jsonl", "nano3_qa.yaml", "nano3_qa_mc.jsonl", "nano3_qa_mc.yaml"]
    assert set(json.loads((sft_eval / "lm_eval" / "results.json").read_text())) == {"nano3_qa", "nano3_qa_mc"}
    # progress.json, what the stage's watcher read last: every task done, none running
    assert json.loads((sft_eval / "progress.json").read_text()) == {"done": 5, "of": 5, "unit": "tasks"}

    r = result(sft_eval)
    assert r["artifact"] == "nano3-eval" and r["name"] == "nano3/eval" and r["metrics"] == m
    assert r["inputs"]["model"]["artifact"] == "nano3-sft-model"
    assert r["inputs"]["pretrain_data"]["artifact"] == "nano3-pretrain-data"
    assert all("." not in k for k in m)  # usable in ${art:nano3-eval,metadata.result.metrics.KEY}


@pytest.mark.parametrize("override, needle", [
    ("model_path=/nonexistent/model", "model_path"),
    ("heldout.splits=[tests]", "heldout.splits"),
    ("heldout.max_tokens=3", "unknown config key 'heldout.max_tokens' (did you mean 'max_new_tokens'?)"),
    ("perplexity.seq_length=1024", "max_position_embeddings"),
    ("rl_data=/nonexistent/rl", "rl_data"),
    ("WORLDLESS", "world.json"),
])
def test_eval_user_errors_exit_2(tmp_path, capsys, data, models, override, needle):
    out = tmp_path / "out"
    if override == "WORLDLESS":  # a folder with a tokenizer but no world.json: not the pretrain data
        override = f"pretrain_data={data['rl']}"
    argv = ["--config", "tiny", f"output_dir={out}", f"model_path={models['sft']}",
            f"pretrain_data={data['pretrain']}", f"rl_data={data['rl']}", override]
    assert_user_error(EVAL, argv, capsys, out, needle)


def test_comparison_table_from_results_files(tmp_path, sft_eval):
    from rich.console import Console

    from recipes.nano3.evaluation.report import compare_files

    base = json.loads((sft_eval / "results.json").read_text())
    pre = {**base, "model": {"artifact": "nano3-pretrain-model"},
           "metrics": {**base["metrics"], "exact_match": 0.02, "perplexity": 2.5}}
    rl = {**base, "model": {"artifact": "nano3-rl-model"},
          "metrics": {**base["metrics"], "rl_reward": base["metrics"]["rl_reward"] + 0.05,
                      "rl_accuracy": base["metrics"]["rl_accuracy"] + 0.05}}
    for name, res in (("pre", pre), ("rl", rl)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(res))
    console = Console(record=True, width=200)
    console.print(compare_files([tmp_path / "rl", sft_eval, tmp_path / "pre"]))
    text = console.export_text()
    lines = [line for line in text.splitlines() if "nano3-" in line]
    assert [line.split()[1] for line in lines] == ["nano3-pretrain-model", "nano3-sft-model", "nano3-rl-model"]
    assert "perplexity" in text and "RL reward" in text and "lm-eval qa MC" in text
    assert "RL vs SFT: RL reward +0.050" in text and "SFT vs pretrain: exact match" in text


def test_evaluate_model_registers_with_lineage_and_hits_the_cache(tmp_path, monkeypatch, capsys, data, models):
    from nemotron_core.artifacts import open_registry

    from nemotron_cli.evaluate import evaluate_model
    from recipes.nano3.evaluation.compare import print_comparison

    (tmp_path / "env.toml").write_text(f'[artifacts]\nroot = "{tmp_path / "artifacts"}"\n')
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "env.toml"))
    reg = open_registry({"root": str(tmp_path / "artifacts")})
    reg.publish("nano3-pretrain-data", data["pretrain"])
    reg.publish("nano3-rl-data", data["rl"])
    model = reg.publish("nano3-sft-model", models["sft"], lineage=["nano3-pretrain-data"])

    fast = ["lm_eval.enabled=false", "perplexity.batches=4"]
    assert evaluate_model("nano3-sft-model", config="tiny", overrides=fast) == 0
    first = capsys.readouterr().out
    evals = reg.list("nano3-eval")
    assert len(evals) == 1 and "registered nano3-eval:v1" in first
    assert set(evals[0].lineage) == {model.ref, "nano3-pretrain-data:v1", "nano3-rl-data:v1"}
    metrics = evals[0].metadata["result"]["metrics"]
    assert metrics["exact_match"] == json.loads((Path(evals[0].path) / "results.json").read_text())["metrics"][
        "exact_match"]
    table = first.split("registered nano3-eval:v1")[1]
    assert "nano3-sft-model:v1 " in table and "exact match" in table and "RL reward" in table

    assert evaluate_model(f"{model.ref}", config="tiny", overrides=fast) == 0  # same content: cache hit
    assert "cache hit" in capsys.readouterr().out and len(reg.list("nano3-eval")) == 1

    from nemotron_core.errors import ArtifactError

    with pytest.raises(ArtifactError, match="not a model artifact"):
        evaluate_model("nano3-rl-data", config="tiny")
    with pytest.raises(ArtifactError):
        evaluate_model("nano3-sft-model:v9", config="tiny")
    print_comparison(open_registry({"root": str(tmp_path / "empty")}))
    assert "no nano3-eval versions yet" in capsys.readouterr().out


def test_nano3_eval_cli_registers_the_eval_and_prints_sft_vs_rl(tmp_path, data, models, rl_reference, sft_eval):
    """`nemotron nano3 eval` (the real entry point) on the RL model: its row joins the SFT model's in the table."""
    from nemotron_core.artifacts import open_registry

    (tmp_path / "env.toml").write_text(f'[artifacts]\nroot = "{tmp_path / "artifacts"}"\n')
    reg = open_registry({"root": str(tmp_path / "artifacts")})
    pre_data, rl_data = reg.publish("nano3-pretrain-data", data["pretrain"]), reg.publish("nano3-rl-data", data["rl"])
    sft = reg.publish("nano3-sft-model", models["sft"], lineage=[pre_data.ref])
    rl = reg.publish("nano3-rl-model", rl_reference / "model", lineage=[sft.ref, rl_data.ref])
    reg.publish("nano3-eval", sft_eval, lineage=[sft.ref])  # the SFT model's eval, already made

    nemotron = Path(sys.executable).with_name("nemotron")
    p = subprocess.run([str(nemotron), "nano3", "eval", "-c", "tiny", "model_path=${art:nano3-rl-model,path}",
                        "lm_eval.enabled=false", "perplexity.batches=4"], capture_output=True, text=True,
                       env={**env(), "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml")}, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    evals = reg.list("nano3-eval")
    assert len(evals) == 2 and f"registered {evals[-1].ref}" in p.stdout
    assert {rl.ref, pre_data.ref, rl_data.ref} <= set(evals[-1].lineage)
    rl_metrics = evals[-1].metadata["result"]["metrics"]
    table = p.stdout.split(f"registered {evals[-1].ref}")[1]
    rows_ = [line.split()[1] for line in table.splitlines() if "nano3-" in line and "model" in line and "│" in line]
    assert rows_ == [sft.ref, rl.ref]
    sft_metrics = json.loads((sft_eval / "results.json").read_text())["metrics"]
    assert f"RL vs SFT: RL reward {rl_metrics['rl_reward'] - sft_metrics['rl_reward']:+.3f}" in table


# ---- slow: the whole tiny pipeline shows the stage gains ------------------------------------------
SEEDS = (1234, 1, 2)
GAINS_BEGIN, GAINS_END = "<!-- stage-gains:begin (tests/recipes/test_rl_eval.py writes it) -->", "<!-- stage-gains:end -->"


TASK_LABELS = {"arith": "arithmetic", "sequence": "sequences", "capital": "capitals", "color": "flag colors",
               "rivers": "rivers", "home": "homes", "home_capital": "two-hop"}


def gains_table(evals: dict[int, dict[str, dict]], seconds: dict[str, float]) -> str:
    """The README's "What the tiny pipeline learns" table from eval metrics {seed: {stage: metrics}}:
    means over the seeds and exact match per seed; stages missing from the evals are left out."""
    stages = [st for st in ("pretrain", "sft", "rl") if all(st in e for e in evals.values())]
    mean = lambda stage, key: sum(e[stage][key] for e in evals.values()) / len(evals)  # noqa: E731
    label = {"pretrain": "pretrain", "sft": "SFT", "rl": "RL (GRPO)"}
    lines = ["| model | pretrain-text perplexity | held-out exact match | per seed (" + " / ".join(map(str, evals))
             + ") | held-out RL reward | stage wall (s) |", "|---|---|---|---|---|---|"]
    for stage in stages:
        seeds = " / ".join(f"{e[stage]['exact_match'] * 100:.1f}" for e in evals.values())
        wall = f"{seconds[stage]:.0f}" if stage in seconds else "-"
        lines.append(f"| {label[stage]} | {mean(stage, 'perplexity'):.2f} | {mean(stage, 'exact_match') * 100:.1f} % | "
                     f"{seeds} | {mean(stage, 'rl_reward'):.3f} | {wall} |")
    n = evals[next(iter(evals))][stages[0]]["exact_match_n"]
    margins = [f"{label[b]} vs {label[a]} {(mean(b, 'exact_match') - mean(a, 'exact_match')) * 100:+.1f} points"
               for a, b in zip(stages, stages[1:])]
    lines.append(f"\nHeld-out questions: {n} (valid + test). Exact match, means over {len(evals)} seed(s): "
                 f"{', '.join(margins)}.")
    tasks = [t for t in TASK_LABELS if all(t in e[st].get("by_task", {}) for e in evals.values() for st in stages)]
    if tasks:
        lines += ["", "Per task, held-out exact match (means over the seeds):", "",
                  "| model | " + " | ".join(TASK_LABELS[t] for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
        lines += [f"| {label[st]} | " + " | ".join(
            f"{sum(e[st]['by_task'][t] for e in evals.values()) / len(evals) * 100:.0f} %" for t in tasks) + " |"
            for st in stages]
    return "\n".join(lines)


def write_readme_table(table: str) -> None:
    """Replace the README's table between the stage-gains markers (NANO3_WRITE_README=1)."""
    readme = REPO / "README.md"
    text = readme.read_text()
    head, rest = text.split(GAINS_BEGIN)
    _, tail = rest.split(GAINS_END)
    readme.write_text(f"{head}{GAINS_BEGIN}\n{table}\n{GAINS_END}{tail}")


def seed_pipeline(tmp: Path, d: dict, seed: int) -> tuple[dict[str, dict], dict[str, float]]:
    """pretrain -> SFT -> RL -> eval of the three with `seed`; (metrics per stage, seconds per stage)."""
    m = {k: tmp / f"{k}-model" for k in ("pretrain", "sft", "rl")}
    # one core per seed: the seeds run side by side (OpenMP threads on shared cores stall each other)
    common = [f"seed={seed}", "runtime.threads=1", *QUIET]
    times = {}
    for stage, cmd in (
            ("pretrain", [sys.executable, str(TRAIN["pretrain"]), "--config", "tiny", f"output_dir={m['pretrain']}",
                          f"data_path={d['pretrain']}", *common]),
            ("sft", [sys.executable, str(TRAIN["sft"]), "--config", "tiny", f"output_dir={m['sft']}",
                     f"data_path={d['sft']}", f"base_model={m['pretrain']}", *common]),
            ("rl", rl_cmd(m["rl"], d["rl"], m["sft"], *common))):
        t = time.time()
        run(cmd, timeout=5400)
        times[stage] = time.time() - t
    evals = {}
    for stage in m:
        run(eval_cmd(tmp / f"eval-{stage}", m[stage], d, "lm_eval.enabled=false", "runtime.threads=1"), timeout=1800)
        results = json.loads((tmp / f"eval-{stage}" / "results.json").read_text())
        evals[stage] = {**results["metrics"], "by_task": results["exact_match_by_task"]}
    return evals, times


@pytest.mark.slow
def test_tiny_pipeline_stage_gains(tmp_path):
    """Full tiny configs, 3 seeds side by side: data -> pretrain -> SFT -> RL -> eval of all three.
    Held-out exact match, means over the seeds: SFT >= pretrain + 25 points, RL >= SFT + 5 points.
    Prints the README table; NANO3_WRITE_README=1 writes it into README.md."""
    from concurrent.futures import ThreadPoolExecutor

    d = {k: tmp_path / f"{k}-data" for k in ("pretrain", "sft", "rl")}
    tok = f"tokenizer_path={d['pretrain'] / 'tokenizer'}"
    run([sys.executable, str(PREP["pretrain"]), "--config", "tiny", f"output_dir={d['pretrain']}"])
    run([sys.executable, str(PREP["sft"]), "--config", "tiny", f"output_dir={d['sft']}", tok])
    run([sys.executable, str(REPO / "recipes/nano3/stage2_rl/data_prep.py"), "--config", "tiny",
         f"output_dir={d['rl']}", tok])
    with ThreadPoolExecutor(len(SEEDS)) as pool:
        done = dict(zip(SEEDS, pool.map(lambda s: seed_pipeline(tmp_path / f"seed{s}", d, s), SEEDS)))
    evals = {s: e for s, (e, _) in done.items()}
    seconds = {k: sum(t[k] for _, t in done.values()) / len(done) for k in ("pretrain", "sft", "rl")}
    table = gains_table(evals, seconds)
    print(f"\n{table}\nload average {os.getloadavg()}")
    for s in SEEDS:
        rl_run = result(tmp_path / f"seed{s}" / "rl-model")["metrics"]
        print(f"seed {s}: RL valid reward {rl_run['valid_reward_start']:.3f} -> {rl_run['valid_reward']:.3f}, "
              f"per task SFT {evals[s]['sft']['by_task']} RL {evals[s]['rl']['by_task']}")
    if os.environ.get("NANO3_WRITE_README") == "1":
        write_readme_table(table)
    mean = {st: sum(e[st]["exact_match"] for e in evals.values()) / len(evals) for st in ("pretrain", "sft", "rl")}
    assert mean["sft"] >= mean["pretrain"] + 0.25, mean
    assert mean["rl"] >= mean["sft"] + 0.05, mean
