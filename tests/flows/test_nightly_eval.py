"""The nightly eval flow: which model versions it evaluates, aliases, failures, and the history table.

The selection rules run first against a registry folder (no Prefect needed: cheap and exact).
Then the flow itself runs against a real Prefect server and real eval jobs (local executor, tiny
configs) on a real pretrain model and copies of it registered "any other way":
1. both pretrain versions without an eval are evaluated;
2. a model imported since (`nemotron nano3 model import`) is the only one evaluated the next night,
   and the history table on the server lists every eval, ordered by model and version;
3. a night with nothing new evaluates nothing;
4. a model whose eval fails does not stop the others nor the history; the flow run fails naming it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.nightly_eval import eval_history, eval_targets
from tests.flows.helpers import REPO, flow_state, registry, run_flow

# Eval jobs that check orchestration, not model quality (tests/recipes checks the eval itself).
EVAL_FAST = ["lm_eval.enabled=false", "perplexity.batches=4", "heldout.splits=[valid]", "runtime.threads=1"]
PRETRAIN_FAST = ["train.max_steps=20", "eval.interval=20", "checkpoint.interval=20", "log.interval=10",
                 "runtime.threads=1"]
BUILT = all((REPO / "recipes" / "nano3" / s).is_file() for s in
            ("stage0_pretrain/data_prep.py", "stage2_rl/data_prep.py", "stage0_pretrain/train.py", "stage3_eval/eval.py"))


# ---------------------------------------------------------------- the rules, on a registry folder

def _folder(tmp_path: Path, name: str) -> Path:
    d = tmp_path / "src" / name
    d.mkdir(parents=True)
    (d / "f.txt").write_text(name)
    return d


def _publish(reg, tmp_path, name, *, lineage=(), metrics=None):
    metadata = {"result": {"metrics": metrics}} if metrics is not None else {}
    return reg.publish(name, _folder(tmp_path, f"{name}-{len(list(tmp_path.glob('src/*')))}"), metadata=metadata,
                       lineage=lineage).ref


def test_targets_are_the_model_versions_without_an_eval(tmp_path):
    from nemotron_core.artifacts import open_registry

    reg = open_registry({"root": str(tmp_path / "reg")})
    assert eval_targets(reg, ["latest", "prod"]) == [] and eval_history(reg) == []  # an empty registry
    data, rl_data = _publish(reg, tmp_path, "nano3-pretrain-data"), _publish(reg, tmp_path, "nano3-rl-data")
    pre = [_publish(reg, tmp_path, "nano3-pretrain-model") for _ in range(10)]
    sft = _publish(reg, tmp_path, "nano3-sft-model")
    for model, loss in ((pre[9], 1.0), (pre[1], 2.0), (pre[0], 3.0), (sft, 0.5)):
        _publish(reg, tmp_path, "nano3-eval", lineage=[model, data, rl_data],
                 metrics={"loss": loss, "note": "text is left out", "exact_match": 0.25})
    _publish(reg, tmp_path, "nano3-eval", lineage=[data], metrics={})  # an eval of no model version
    reg.set_alias(pre[0], "prod")  # already evaluated: not again
    assert eval_targets(reg, ["latest", "prod"]) == sorted(pre[2:9])
    assert eval_targets(reg, ["no-such-alias"]) == sorted(pre[2:9])  # an unknown alias adds nothing
    # a version whose record is unreadable is never a target (the flow logs it)
    (tmp_path / "reg" / "nano3-pretrain-model" / "versions" / "v3.json").write_text("{not json")
    assert pre[2] not in eval_targets(reg, [])
    history = eval_history(reg)
    # ordered by model name, then version as a number (v10 after v2), the no-model eval first ("-")
    assert [row["model"] for row in history] == ["-", pre[0], pre[1], pre[9], sft]
    assert {k for k in history[1] if k not in ("model", "eval", "created")} == {"loss", "exact_match"}
    assert history[1]["loss"] == 3.0


# ---------------------------------------------------------------- the flow, on a real Prefect server

_NIGHTLY = ("import json, sys\n"
            "from flows.nightly_eval import nightly_eval\n"
            "state = nightly_eval(**json.loads(sys.argv[1]), return_state=True)\n"
            "print('RUN=' + str(state.state_details.flow_run_id), flush=True)\n"
            "print('STATE=' + state.type.value, flush=True)\n"
            "print('RESULT=' + json.dumps(state.result(raise_on_failure=False) if state.is_completed() else None),\n"
            "      flush=True)\n"
            "print('MESSAGE=' + ' '.join(str(state.message).split()), flush=True)\n")


def _nightly(env: dict[str, str], **params) -> dict[str, str]:
    proc = subprocess.run([sys.executable, "-c", _NIGHTLY, json.dumps({"overrides": EVAL_FAST, **params})], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1500)
    lines = dict(line.split("=", 1) for line in proc.stdout.splitlines() if line.split("=", 1)[0] in
                 ("RUN", "STATE", "RESULT", "MESSAGE"))
    assert "STATE" in lines, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {**lines, "log": proc.stdout + proc.stderr}


def _history_artifact(env: dict[str, str], flow_run_id: str) -> list[dict]:
    code = ("import json, sys\n"
            "from prefect.client.orchestration import get_client\n"
            "from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey\n"
            "with get_client(sync_client=True) as c:\n"
            "    found = c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[sys.argv[1]]),\n"
            "                             flow_run_id=ArtifactFilterFlowRunId(any_=[sys.argv[2]])))\n"
            "    print(json.dumps([a.data for a in found]))\n")
    proc = subprocess.run([sys.executable, "-c", code, "nano3-eval-history", flow_run_id], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.splitlines()[-1])
    assert len(found) == 1, found
    data = found[0]
    return json.loads(data) if isinstance(data, str) else data


@pytest.fixture(scope="module")
def models(prefect_server):
    """A state folder with the data the eval reads and one real (briefly trained) pretrain model, twice."""
    with flow_state(prefect_server, "ne") as (state, env):
        first = run_flow(env, stages=["data_pretrain", "data_rl", "pretrain"], overrides={"pretrain": PRETRAIN_FAST})
        reg = registry(state)
        model = reg.resolve(first["pretrain"])
        copy = reg.publish("nano3-pretrain-model", Path(model.path), metadata={"producer": "test copy"})
        yield state, env, [model.ref, copy.ref]


@pytest.mark.skipif(not BUILT, reason="needs the data prep, pretrain and eval recipes")
def test_nightly_eval_on_a_real_server(models):
    state, env, pretrain = models
    reg = registry(state)

    # 1. Two model versions, no eval yet: both evaluated, each eval naming its model in its lineage.
    night1 = _nightly(env)
    assert night1["STATE"] == "COMPLETED", night1["log"][-4000:]
    results = json.loads(night1["RESULT"])
    assert sorted(results) == sorted(pretrain)
    for model, eval_ref in results.items():
        assert model in reg.resolve(eval_ref).lineage

    # 2. A model registered another way since: only it is evaluated; `prod` on an evaluated version adds nothing.
    nemotron = str(Path(sys.executable).with_name("nemotron"))
    imported = subprocess.run([nemotron, "nano3", "model", "import", "sft", reg.resolve(pretrain[0]).path],
                              env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    reg.set_alias(pretrain[0], "prod")
    night2 = _nightly(env, aliases=["prod"])
    assert night2["STATE"] == "COMPLETED", night2["log"][-4000:]
    assert list(json.loads(night2["RESULT"])) == ["nano3-sft-model:v1"]
    history = _history_artifact(env, night2["RUN"])
    assert [row["model"] for row in history] == [*sorted(pretrain, key=lambda r: int(r.rsplit(":v", 1)[1])),
                                                 "nano3-sft-model:v1"]
    assert all(len(row) > 3 for row in history)  # model, eval, created and the numeric metrics

    # 3. Nothing new: nothing evaluated, no new eval version.
    evals = [v.ref for v in reg.list("nano3-eval")]
    night3 = _nightly(env)
    assert night3["STATE"] == "COMPLETED" and json.loads(night3["RESULT"]) == {}, night3["log"][-4000:]
    assert [v.ref for v in reg.list("nano3-eval")] == evals
    assert "0 model version(s) to evaluate" in night3["log"]

    # 4. One good and one broken new model: the good one is evaluated, the history written, the run failed.
    broken = state / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    bad = reg.publish("nano3-rl-model", broken, metadata={"producer": "test"}).ref
    good = reg.publish("nano3-rl-model", Path(reg.resolve(pretrain[1]).path), metadata={"producer": "test"}).ref
    night4 = _nightly(env)
    assert night4["STATE"] == "FAILED", night4["log"][-4000:]
    assert f"eval failed for 1 of 2 model version(s): {bad}" in night4["MESSAGE"]
    assert good in {m for v in reg.list("nano3-eval") for m in v.lineage}
    assert bad not in {m for v in reg.list("nano3-eval") for m in v.lineage}
    assert good in [row["model"] for row in _history_artifact(env, night4["RUN"])]
