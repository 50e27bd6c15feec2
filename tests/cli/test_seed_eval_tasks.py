"""`nano3 eval -t TASK`: the eval job runs the selected tasks only (slow: data prep + a short pretrain).

The CLI side (names checked, the `tasks` override in the resolved config) is in
test_seed_command_line.py; this runs the eval script itself with `tasks=[...]`.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.recipes.test_trainers import PREP, TRAIN, REPO, run

EVAL = REPO / "recipes/nano3/stage3_eval/eval.py"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval_tasks")
    pre, rl, model = base / "pretrain-data", base / "rl-data", base / "model"
    run([sys.executable, str(PREP["pretrain"]), "--config", "tiny", f"output_dir={pre}",
         "sources.synthetic.documents=600", "num_shards=1", "tokenizer.sample_documents=600"])
    run([sys.executable, str(REPO / "recipes/nano3/stage2_rl/data_prep.py"), "--config", "tiny", f"output_dir={rl}",
         f"tokenizer_path={pre / 'tokenizer'}"])
    run([sys.executable, str(TRAIN["pretrain"]), "--config", "tiny", f"output_dir={model}", f"data_path={pre}",
         "train.max_steps=5", "eval.interval=0", "checkpoint.interval=0", "log.wandb.mode=disabled"])
    return {"pretrain_data": pre, "rl_data": rl, "model_path": model, "base": base}


def evaluate(world, name: str, *overrides: str, ok: bool = True):
    out = world["base"] / name
    cmd = [sys.executable, str(EVAL), "--config", "tiny", f"output_dir={out}",
           *(f"{k}={world[k]}" for k in ("model_path", "pretrain_data", "rl_data")), "heldout.splits=[test]",
           "perplexity.batches=2", *overrides]
    return out, run(cmd, ok=ok)


def test_only_the_selected_tasks_run(world):
    out, _ = evaluate(world, "ppl-mc", "tasks=[perplexity,nano3_qa_mc]")
    res = json.loads((out / "results.json").read_text())
    assert res["tasks"] == ["perplexity", "nano3_qa_mc"]
    assert set(res["metrics"]) == {"perplexity", "valid_loss", "lmeval_qa_mc_acc", "lmeval_qa_mc_acc_stderr"}
    assert set(res["lm_eval"]) == {"nano3_qa_mc"} and res["counts"]["qa"] == 0 and res["counts"]["rl"] == 0


def test_an_unknown_task_is_a_one_line_error(world):
    out, proc = evaluate(world, "unknown", "tasks=[nano3_qa_mcc]", ok=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "'nano3_qa_mcc' is not an lm-eval task known here (did you mean 'nano3_qa_mc'?)" in lines[0]
    assert not (out / "RESULT.json").exists()
