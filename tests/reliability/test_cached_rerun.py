"""A rerun of nano3-full with nothing changed is all Cached in Prefect: every task run of the
second run (all seven stages, the three evals included: 9 task runs) is in state Cached, and no
job is submitted. A task that runs again and is only saved by the registry's content-key check
inside it is a failure here (issue #19: the second quickstart showed 8/9 Cached).

Why one eval missed: Prefect computes the cache keys of concurrent tasks in threads of the flow
process, and the content key parses the recipe sources with `ast.parse`, which CPython 3.11 does not
make thread-safe ("SystemError: AST constructor recursion depth mismatch" when a thread switch lands
inside the converter). A key that raises is no key: Prefect logs the error, stores no result, and the
next run runs that task again. In a cached rerun the three evals start at the same moment.

The flow runs in a subprocess against a real Prefect server, as a deployment's worker runs it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.flows.helpers import REPO, flow_state, job_dirs

# Orchestration, not learning: the shortest runs each recipe accepts, one thread each.
FAST = {
    "pretrain": ["train.max_steps=20", "eval.interval=20", "checkpoint.interval=20", "log.interval=10",
                 "runtime.threads=1"],
    "sft": ["train.max_steps=10", "eval.interval=10", "checkpoint.interval=10", "log.interval=10", "runtime.threads=1"],
    "rl": ["train.max_steps=2", "eval.interval=2", "eval.prompts=8", "rollout.prompts_per_step=4",
           "rollout.samples_per_prompt=2", "rollout.actors=1", "log.interval=1", "runtime.threads=1"],
    "eval": ["lm_eval.enabled=false", "perplexity.batches=4", "heldout.splits=[valid]", "runtime.threads=1"],
}

# The flow, then its task runs as the server recorded them: [name, state name, {parameter: [upstream task
# run names]}] per task run (Prefect records which task run's result fed each parameter).
_CODE = ("import json, sys\n"
         "from prefect.client.orchestration import get_client\n"
         "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId\n"
         "from flows.nano3_full import nano3_full\n"
         "state = nano3_full(**json.loads(sys.argv[1]), return_state=True)\n"
         "result = state.result()\n"
         "with get_client(sync_client=True) as client:\n"
         "    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(\n"
         "        id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))\n"
         "names = {str(t.id): t.name for t in runs}\n"
         "tasks = [[t.name, t.state.name, {p: [names[str(i.id)] for i in ins if getattr(i, 'id', None)]\n"
         "                                 for p, ins in t.task_inputs.items()}] for t in runs]\n"
         "print('TASKS=' + json.dumps(sorted(tasks, key=json.dumps)), flush=True)\n"
         "print('RESULT=' + json.dumps(result), flush=True)\n")
# The dry-run plan of the same parameters: [stage, action, {slot: upstream stage}] per row.
_PLAN = ("import json, sys\n"
         "from pipeline.plan import plan_pipeline\n"
         "rows = plan_pipeline(**json.loads(sys.argv[1]))\n"
         "print('PLAN=' + json.dumps([[r.stage.split('[')[0], r.action, r.inputs] for r in rows]), flush=True)\n")


def _stage(task_run_name: str) -> str:
    """'data-pretrain-tiny' -> 'data_pretrain' (stage_task_options names task runs '<stage>-<config>')."""
    return task_run_name.removesuffix("-tiny").replace("-", "_")


def _python(env: dict[str, str], code: str) -> dict[str, object]:
    """Run `code` with the test's parameters; its MARKER=json lines, by marker."""
    proc = subprocess.run([sys.executable, "-c", code, json.dumps({"overrides": FAST})], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=3000)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return {line.split("=", 1)[0]: json.loads(line.split("=", 1)[1]) for line in out.splitlines()
            if line.split("=", 1)[0] in ("TASKS", "RESULT", "PLAN")}


def _graph(rows) -> list[str]:
    """One canonical line per run of a stage: 'stage <- slot:upstream, ...' (sorted, duplicates kept)."""
    return sorted(f"{stage} <- " + ", ".join(f"{slot}:{up}" for slot, up in sorted(inputs.items()))
                  for stage, inputs in rows)


@pytest.mark.slow
def test_second_run_of_the_whole_pipeline_is_all_cached_and_the_plan_has_the_flows_graph(prefect_server):
    with flow_state(prefect_server, "cached") as (state, env):
        first = _python(env, _CODE)
        tasks = first["TASKS"]
        assert len(tasks) == 9 and all(s == "Completed" for _, s, _ in tasks), tasks
        assert set(first["RESULT"]["evals"]) == {"pretrain", "sft", "rl"}
        jobs = job_dirs(state)

        # The dry-run plan walks the graph the flow submitted: the same runs of the same stages, each
        # consuming the same upstreams (the three evals included), and all of it cached now.
        flow_graph = _graph((_stage(name), {slot: _stage(ups[0]) for slot, ups in inputs.items() if ups})
                            for name, _, inputs in tasks)
        plan = _python(env, _PLAN)["PLAN"]
        assert _graph((stage, inputs) for stage, _, inputs in plan) == flow_graph
        assert [action for _, action, _ in plan] == ["skip"] * 9
        assert "eval <- model:rl, pretrain_data:data_pretrain, rl_data:data_rl" in flow_graph

        second = _python(env, _CODE)
        assert second["RESULT"] == first["RESULT"]
        assert len(second["TASKS"]) == 9, second["TASKS"]
        assert [t for t in second["TASKS"] if t[1] != "Cached"] == [], second["TASKS"]
        assert job_dirs(state) == jobs  # nothing submitted, not even a re-attach


def test_content_keys_computed_in_many_threads_at_once_never_fail(tmp_path):
    """recipe_source_digest from several threads while the garbage collector runs Python finalizers
    (what forces thread switches inside ast.parse): every call returns the one right digest."""
    from nemotron_core.content_key import recipe_source_digest

    package = tmp_path / "recipes" / "big"
    package.mkdir(parents=True)
    (tmp_path / "recipes" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    # a large, deeply nested module (a copy of the standard library's argparse): a long conversion at
    # depth is the window in which a thread switch breaks the converter's shared depth counter
    (package / "lib.py").write_text(Path(argparse.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    script = package / "script.py"
    script.write_text("from recipes.big import lib\n")
    expected = recipe_source_digest(script)
    errors: list[str] = []
    digests: set[str] = set()

    class Finalizer:  # a cycle whose collection runs Python code in whichever thread triggers the GC
        def __del__(self) -> None:
            sum(range(50))

    def parse() -> None:
        for _ in range(20):
            try:
                digests.add(recipe_source_digest(script))
            except Exception as e:  # noqa: BLE001 - the failure under test
                errors.append(repr(e))

    def garbage() -> None:
        for _ in range(200_000):
            cycle = Finalizer()
            cycle.self = cycle

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=parse) for _ in range(4)] + [threading.Thread(target=garbage)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and digests == {expected}


class _Future:
    """What a stub task's submit returns: it remembers which stage it stands for."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def result(self) -> str:
        return f"{self.stage}:v1"


class _Task:
    """A stand-in for a stage's Prefect task: records what the flow submits, runs nothing."""

    submitted: list[tuple[str, dict[str, str]]] = []

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def with_options(self, **_: object) -> "_Task":
        return self

    def submit(self, request: object, **inputs: _Future) -> _Future:
        _Task.submitted.append((self.stage, {slot: future.stage for slot, future in inputs.items()}))
        return _Future(self.stage)


def test_the_dry_run_plan_has_the_graph_the_flow_submits(tmp_path, monkeypatch):
    """The cheap half of the slow test above: the flow's own body walks the stage table with stub tasks
    (each submit records its stage and the upstream stage feeding each input; nothing runs) and the
    dry-run plan of a fresh state folder has the same runs with the same upstreams, the three evals included."""
    import flows.nano3_full as full
    from pipeline.plan import plan_pipeline

    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NEMOTRON_ENV_FILE", "")
    monkeypatch.setattr(full, "stage_task", _Task)
    monkeypatch.setattr(full, "runtime_options", lambda *args, **kwargs: {})
    monkeypatch.setattr(full, "summarize", lambda *args, **kwargs: None)
    monkeypatch.setattr(full, "guard_flow_run", lambda: None)
    monkeypatch.setattr(_Task, "submitted", [])
    full.nano3_full.fn()  # the flow's body, without the Prefect engine
    flow_graph = _graph(_Task.submitted)
    assert len(flow_graph) == 9 and "eval <- model:rl, pretrain_data:data_pretrain, rl_data:data_rl" in flow_graph
    plan = plan_pipeline()
    assert _graph((row.stage.split("[")[0], row.inputs) for row in plan) == flow_graph
    assert not (tmp_path / "state" / "jobs").exists()  # planning wrote no job
