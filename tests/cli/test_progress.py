"""Progress, cheap parts: the job's progress.json (written by the trainers' metrics and the data prep's
shard runner, read back by the stage task), the artifact line both ends share, and the watcher's rows.

The same pieces against a real Prefect server and a real flow run: tests/flows/test_progress_watch.py and
tests/deployments/test_ui.py.
"""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timedelta, timezone
from uuid import uuid4

from recipes.nano3.common.progress import PROGRESS_FILE, Progress, read_progress, write_progress


def test_trainer_metrics_write_step_total_and_loss(tmp_path):
    from recipes.nano3.training.metrics import Metrics

    metrics = Metrics(tmp_path / "metrics.jsonl", enabled=True, wcfg={"mode": "disabled"}, run_name="t",
                      config={"train": {"max_steps": 100}}, resume_step=None, wandb_id=None)
    metrics.log({"step": 10, "loss": 2.5, "lr": 1e-3, "elapsed": 4.0})
    metrics.log({"step": 20, "loss": 2.0, "lr": 1e-3, "elapsed": 8.0})
    metrics.close()
    got = read_progress(tmp_path)
    assert got == Progress(step=20, total=100, loss=2.0, elapsed=8.0)
    assert got.fraction() == 0.2 and got.eta() == 32.0
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # replaced atomically


def test_shard_runner_counts_shards_with_no_times(tmp_path):
    from recipes.nano3.common.shards import run_shards

    out = tmp_path / "out"
    (out / "shards").mkdir(parents=True)
    for name in ("a", "b"):  # finished before (resume): no Ray needed
        (out / "shards" / f"{name}.json").write_text(json.dumps({"digest": name, "stats": {}}))
    run_shards(lambda job: {}, [{"name": "a", "digest": "a"}, {"name": "b", "digest": "b"}], workers=1,
               marker_dir=out / "shards", log=lambda _: None)
    assert json.loads((out / PROGRESS_FILE).read_text()) == {"done": 2, "of": 2, "unit": "shards"}


def test_foreign_or_broken_records_read_as_none(tmp_path):
    assert read_progress(tmp_path) is None
    (tmp_path / PROGRESS_FILE).write_text('{"step": 3')  # cut mid-write by a non-atomic writer
    assert read_progress(tmp_path) is None
    (tmp_path / PROGRESS_FILE).write_text(json.dumps([1, 2]))
    assert read_progress(tmp_path) is None
    (tmp_path / PROGRESS_FILE).write_text(json.dumps({"step": True, "total": "9", "loss": "nan", "done": 1, "of": 4,
                                                      "unit": "shards"}))
    assert read_progress(tmp_path) == Progress(done=1, of=4, unit="shards")  # wrong types dropped
    # words reach the UI and the terminal: an unknown unit, a task name that is not a plain name, dropped
    (tmp_path / PROGRESS_FILE).write_text(json.dumps({"done": 1, "of": 4, "unit": "bytes · job x",
                                                      "task": "qa · eta 0s", "task_done": 1, "task_of": 2}))
    assert read_progress(tmp_path) == Progress(done=1, of=4, task_done=1, task_of=2)
    (tmp_path / PROGRESS_FILE).write_text(" " * 5000 + "{}")
    assert read_progress(tmp_path) is None
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"step": 1}))
    (tmp_path / PROGRESS_FILE).unlink()
    os.symlink(elsewhere, tmp_path / PROGRESS_FILE)
    assert read_progress(tmp_path) is None  # never followed through a symlink
    (tmp_path / PROGRESS_FILE).unlink()
    write_progress(tmp_path, Progress(step=5, total=10, loss=1.25, elapsed=10.0))
    assert read_progress(tmp_path) == Progress(step=5, total=10, loss=1.25, elapsed=10.0)


def test_artifact_line_round_trips():
    from tasks.progress import describe, eta_text, fields_of, parse, percent

    fields = fields_of(Progress(step=120, total=600, loss=2.31, elapsed=40.0), "local 4711", None)
    line = describe(fields)
    assert line == "job local 4711 · step 120/600 · loss 2.3100 · eta 2m40s"
    assert parse(line) == {"job": "local 4711", "step": "120/600", "loss": "2.3100", "eta": "2m40s"}
    assert percent(Progress(step=120, total=600)) == 20.0 and percent(None) == 0.0
    assert parse(describe(fields_of(Progress(done=3, of=8, unit="shards"), None, "nano3-sft-model:v2"))) == \
        {"model": "nano3-sft-model:v2", "shards": "3/8"}
    evaluating = Progress(done=1, of=5, unit="tasks", task="heldout_qa", task_done=64, task_of=212)
    line = describe(fields_of(evaluating, "local 9", "nano3-rl-model:v1"))
    assert line == "model nano3-rl-model:v1 · job local 9 · tasks 1/5 · now heldout_qa 64/212"
    assert percent(evaluating) == 26.0  # (1 task + 64/212 of the next) of 5
    assert parse(None) == {} and parse("waiting") == {} and eta_text(59.6) == "1m00s"


def _task_run(name: str, state, started: datetime | None):
    from prefect.client.schemas.objects import TaskRun

    return TaskRun(id=uuid4(), name=name, task_key=name, dynamic_key="0", state=state, start_time=started)


def test_rows_one_per_stage_run_and_plain_lines_per_change():
    """Task runs land on their rows (the eval's three by the model their artifact names); a row prints
    when its state or job changes, not at every poll."""
    from prefect.states import Completed, Pending, Running

    from nemotron_cli.progress import Watcher, assign, expected_rows

    expected = expected_rows(None)
    assert [r.label for r in expected] == ["data_pretrain", "data_sft", "data_rl", "pretrain", "sft", "rl",
                                           "eval (pretrain)", "eval (sft)", "eval (rl)"]
    t0 = datetime.now(timezone.utc) - timedelta(seconds=75)
    runs = [_task_run("data-pretrain-tiny", Completed(), t0), _task_run("pretrain-tiny", Running(), t0),
            _task_run("eval-tiny", Running(), t0), _task_run("eval-tiny", Pending(), None)]
    artifacts = {runs[1].id: {"job": "local 7", "step": "10/60", "loss": "6.6170", "eta": "22s"},
                 runs[2].id: {"model": "nano3-rl-model:v1", "job": "local 9"}}
    rows = {r.label: r for r in assign(expected, runs, artifacts)}
    assert rows["pretrain"].state == "running" and rows["eval (rl)"].task_run is runs[2]
    assert rows["eval (pretrain)"].task_run is runs[3] and rows["sft"].state == "pending"

    out = io.StringIO()
    watcher = Watcher(out, live=False)
    watcher.rows = list(rows.values())
    watcher.print_changes()
    text = out.getvalue()
    watcher.print_changes()  # nothing changed: nothing printed
    assert out.getvalue() == text and len(text.splitlines()) == 4, text  # the rows with a task run
    line = next(x for x in text.splitlines() if " pretrain " in x)
    assert "running" in line and "job local 7" in line and "step 10/60" in line and "loss 6.6170" in line \
        and "eta 22s" in line and "1:15" in line

    from rich.console import Console

    screen = io.StringIO()
    Console(file=screen, width=120).print(watcher.table())  # what the live display draws on a terminal
    drawn = screen.getvalue()
    assert "waiting for the flow run" in drawn and "progress" in drawn
    assert all(label in drawn for label in rows) and "local 7" in drawn and "10/60" in drawn and "22s" in drawn


def test_counted_jobs_write_each_part_and_the_rows_show_it(tmp_path):
    """The RL data prep counts rows, the eval its tasks and the running task's questions (common/progress.py
    Counter): each record as written reads back, and the watcher's row prints it."""
    from prefect.states import Running

    from nemotron_cli.progress import Row, line
    from recipes.nano3.common.progress import Counter
    from tasks.progress import describe, fields_of, parse

    seen = []
    track = Counter(tmp_path, 3, "tasks")
    seen.append(read_progress(tmp_path))
    track.begin("heldout_qa")
    track.items(64, 212)
    seen.append(read_progress(tmp_path))
    track.finish()
    seen.append(read_progress(tmp_path))
    track.begin("nano3_qa")
    track.finish(2)
    seen.append(read_progress(tmp_path))
    assert seen == [Progress(done=0, of=3, unit="tasks"),
                    Progress(done=0, of=3, unit="tasks", task="heldout_qa", task_done=64, task_of=212),
                    Progress(done=1, of=3, unit="tasks"), Progress(done=3, of=3, unit="tasks")]
    assert [round(p.fraction() or 0, 3) for p in seen] == [0.0, 0.101, 0.333, 1.0]

    now = datetime.now(timezone.utc)
    row = Row(stage="eval", label="eval (sft)", task_run=_task_run("eval-tiny", Running(), now),
              fields=parse(describe(fields_of(seen[1], "local 9", None))))
    text = line(row, now)
    assert text.startswith("eval (sft)") and "job local 9" in text and "tasks 0/3 heldout_qa 64/212" in text, text
    prep = Counter(tmp_path / "rl", 120, "rows")
    prep.finish(100)
    assert fields_of(read_progress(tmp_path / "rl"), None, None)["rows"] == "100/120"


def test_held_out_answers_come_batch_by_batch_with_the_same_tokens():
    """eval.py's question count comes from heldout.greedy answering one batch at a time: the same
    completions as one `completions` call over all prompts, `answered(k)` after each batch."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from recipes.nano3.evaluation.heldout import greedy
    from recipes.nano3.rl.sampling import completions

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, eos_token_id=3,
                                         pad_token_id=0)).eval()

    class Tokenizer:  # greedy reads only the pad id of the tokenizer
        pad_token_id = 0

    prompts = [[1, 5 + i, 6, 7 + i % 3][: 2 + i % 3] for i in range(5)]
    answered: list[int] = []
    got = greedy(model, Tokenizer(), prompts, max_new_tokens=4, batch_size=2, answered=answered.append)
    assert answered == [2, 4, 5]
    assert got == completions(model, prompts, n=1, greedy=True, max_new_tokens=4, batch_size=2, pad_id=0,
                              stop_ids=[3])


def test_watch_without_a_reachable_server_is_one_line():
    """`nemotron nano3 watch` (and `pipe --batch`) with no server: one line naming PREFECT_API_URL and the fix,
    exit 2, never a ConnectError traceback, never a password from the URL."""
    import subprocess
    import sys
    from pathlib import Path

    nemotron = str(Path(sys.executable).with_name("nemotron"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    for url, argv, needle in (("", ["nano3", "watch"], "set PREFECT_API_URL"),
                              ("http://me:pw-123@127.0.0.1:1/api", ["nano3", "watch", "x"], "no Prefect server answers"),
                              ("http://me:pw-123@127.0.0.1:1/api", ["nano3", "pipe", "--batch", "local"], "scripts/prefect-server start")):
        out = subprocess.run([nemotron, *argv], env={**env, "PREFECT_API_URL": url}, capture_output=True, text=True,
                             timeout=120)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out.stderr
        assert "pw-123" not in out.stdout + out.stderr
