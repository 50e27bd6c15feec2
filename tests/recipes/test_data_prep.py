"""The nano3 data-prep scripts (recipes/nano3/stage*/data_prep.py), run as subprocesses.

Each script runs on its tiny config (smaller via overrides) into tmp_path folders under
the test state folder, with a local Ray head (num_cpus = workers = 2; RAY_ADDRESS unset).
One pretrain output is shared by the module (its tokenizer feeds the SFT and RL runs).
"""

from __future__ import annotations

import json
import random
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from recipes.nano3.common.answers import answer_check, extract_answer
from recipes.nano3.common.blend import load_blend
from recipes.nano3.common.chat import CHAT_TEMPLATE, render
from recipes.nano3.common.indexed import read_indexed
from recipes.nano3.common.outputs import tree_hashes
from nemotron_core.errors import ConfigError
from recipes.nano3.common.world import World, WorldConfig

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = {
    "pretrain": REPO / "recipes/nano3/stage0_pretrain/data_prep.py",
    "sft": REPO / "recipes/nano3/stage1_sft/data_prep.py",
    "rl": REPO / "recipes/nano3/stage2_rl/data_prep.py",
}
# Smaller than tiny.yaml, same shape: 6 shards of ~100k tokens.
PRETRAIN_ARGS = ["sources.synthetic.documents=3000", "num_shards=6", "tokenizer.sample_documents=2000"]
SFT_ARGS = ["sources.synthetic.conversations=3000"]


def command(stage: str, out: Path, *overrides: str, config: str = "tiny") -> list[str]:
    return [sys.executable, str(SCRIPTS[stage]), "--config", config, f"output_dir={out}", *overrides]


def env() -> dict:
    e = dict(os.environ)
    e.pop("RAY_ADDRESS", None)  # always a private local head (num_cpus = workers)
    return e


def run(stage: str, out: Path, *overrides: str, config: str = "tiny", ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(command(stage, out, *overrides, config=config), capture_output=True, text=True, env=env(),
                       timeout=300, cwd=REPO)
    if ok:
        assert p.returncode == 0, f"{stage} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return p


def summary(p: subprocess.CompletedProcess) -> dict:
    line = [x for x in p.stdout.splitlines() if x.startswith("summary: ")][-1]
    return json.loads(line.split(" ", 1)[1])


def assert_failed(p: subprocess.CompletedProcess, out: Path, *needles: str) -> str:
    """Exit 2, a one-line `error: ...` as the last stderr line, no RESULT.json."""
    assert p.returncode == 2, f"rc={p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    for n in needles:
        assert n in last, last
    assert not (out / "RESULT.json").exists()
    return last


def megatron_dataset(prefix: str):
    warnings.filterwarnings("ignore", message=".*Transformer Engine and Apex.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return IndexedDataset(prefix)


def tokenizer(folder: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json"))


# ---- fixtures: one output per stage, shared by the module --------------------------------------
@pytest.fixture(scope="module")
def tmp_module(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data_prep")


@pytest.fixture(scope="module")
def pretrain(tmp_module) -> tuple[Path, dict]:
    out = tmp_module / "pretrain"
    p = run("pretrain", out, *PRETRAIN_ARGS)
    return out, summary(p)


@pytest.fixture(scope="module")
def tiny_world() -> World:
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(SCRIPTS["pretrain"].parent / "config/data_prep/tiny.yaml"))
    return World(WorldConfig.from_dict(cfg["world"]))


def resolved_config(stage: str, tmp: Path, **values) -> Path:
    """What the toolkit does: write a fully resolved train.yaml (no ${art:...} left)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(SCRIPTS[stage].parent / "config/data_prep/tiny.yaml")
    for k, v in values.items():
        OmegaConf.update(cfg, k, v)
    path = tmp / f"{stage}-train.yaml"
    OmegaConf.save(OmegaConf.to_container(cfg, resolve=True), path)
    return path


@pytest.fixture(scope="module")
def sft(tmp_module, pretrain) -> Path:
    out = tmp_module / "sft"
    cfg = resolved_config("sft", tmp_module, tokenizer_path=str(pretrain[0] / "tokenizer"), output_dir=str(out))
    run("sft", out, *SFT_ARGS, config=str(cfg))
    return out


@pytest.fixture(scope="module")
def rl(tmp_module, pretrain) -> Path:
    out = tmp_module / "rl"
    run("rl", out, f"tokenizer_path={pretrain[0] / 'tokenizer'}")
    return out


# ---- pretrain -----------------------------------------------------------------------------------
def test_pretrain_outputs_megatron_blend_tokenizer(pretrain):
    out, summ = pretrain
    result = json.loads((out / "RESULT.json").read_text())
    stats = result["stats"]
    assert result["artifact"] == "nano3-pretrain-data" and len(result["config_digest"]) == 64
    assert stats["vocab_size"] == 1024, "the BPE vocab must fill (enough distinct words)"
    assert stats["documents"]["train"] > 0 and stats["documents"]["valid"] > 0 and stats["documents"]["test"] > 0
    assert summ["tokens"] == stats["tokens"]

    tok = tokenizer(out / "tokenizer")
    assert [tok.token_to_id(t) for t in ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>")] == [0, 1, 2, 3]
    assert tok.encode(" 19").tokens == ["Ġ", "1", "9"]  # digits one per token

    blend = json.loads((out / "blend.json").read_text())
    assert blend["dtype"] == "uint16" and blend["eod_id"] == 0
    for split in ("train", "valid", "test"):
        prefixes, weights = load_blend(out, split)
        assert len(prefixes) == 6 and abs(sum(weights) - 1) < 1e-9
        docs = tokens = 0
        for prefix in prefixes:
            ds = megatron_dataset(prefix)  # megatron-core reads what we wrote
            mine, lengths = read_indexed(prefix)
            assert len(ds) == len(lengths) and list(ds.sequence_lengths) == list(lengths)
            assert (ds[0] == mine[: lengths[0]]).all() and ds[0][-1] == 0  # each document ends with eod
            docs, tokens = docs + len(ds), tokens + int(ds.sequence_lengths.sum())
        assert (docs, tokens) == (stats["documents"][split], stats["tokens"][split])

    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    chat = [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": "7"}]
    assert hf.apply_chat_template(chat, tokenize=False) == render(chat)[0]
    assert hf.chat_template == CHAT_TEMPLATE and hf.eos_token_id == 0 and hf.pad_token_id == 1


def test_pretrain_heldout_items_never_in_training_text(pretrain, tiny_world):
    out, _ = pretrain
    tok = tokenizer(out / "tokenizer")
    lines: set[str] = set()
    for prefix in load_blend(out, "train")[0]:
        ids, _ = read_indexed(prefix)
        lines.update(tok.decode(ids.tolist(), skip_special_tokens=False).replace("<|endoftext|>", "\n").split("\n"))
    eval_rows = [json.loads(x) for x in (out / "eval" / "test.jsonl").read_text().splitlines()]
    assert eval_rows and {r["task"] for r in eval_rows} == {"arith", "sequence"}
    stated = [f"{r['question']} {r['answer']}" in lines for r in eval_rows]
    if tiny_world.cfg.skills_stated:  # held-out skill results are stated like facts; only their questions are held out
        assert sum(stated) > 0.9 * len(stated)
    else:
        assert not any(stated), [r for r, s in zip(eval_rows, stated) if s]
    # skills of the train split are there; facts are taught for every entity, held-out ones included
    train_arith = [it for it in tiny_world.pool("arith", "train")]
    assert sum(it.statements[0] in lines for it in train_arith) > 0.9 * len(train_arith)
    for it in tiny_world.pool("capital", "test"):
        assert any(s in lines for s in it.statements), it
    # Q&A lines (world.pretrain_qa): about train questions SFT may use, never held-out or RL-only ones
    qa = {line for line in lines if line.startswith("Question: ")}
    by_qa = {it.qa_line: it for items in tiny_world.items.values() for it in items}
    assert tiny_world.cfg.pretrain_qa > 0 and len(qa) > 100
    assert all(line in by_qa and by_qa[line].split == "train" and not by_qa[line].rl_only for line in qa)
    rl_only = [it for it in tiny_world.rl_questions() if it.statements]
    assert rl_only and all(it.qa_line not in qa for it in rl_only)
    assert sum(any(s in lines for s in it.statements) for it in rl_only) > 0.9 * len(rl_only)  # facts stay


def test_pretrain_rerun_is_byte_identical(pretrain, tmp_path):
    out, _ = pretrain
    again = tmp_path / "again"
    run("pretrain", again, *PRETRAIN_ARGS)
    assert tree_hashes(again) == tree_hashes(out)


def kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (a subprocess started with start_new_session=True)."""
    for _ in range(3):
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:  # field 6 of /proc/pid/stat: session id
                pids.append(int(stat.parent.name))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def test_pretrain_resume_after_kill_keeps_finished_shards(pretrain, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(command("pretrain", out, *PRETRAIN_ARGS, "workers=1"), env=env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    markers = out / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(markers.glob("synthetic-*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.02)
    kill_session(proc.pid)  # the driver, its local Ray head and the Ray workers (own process groups)
    proc.wait()
    assert not (out / "RESULT.json").exists()
    done = sorted(markers.glob("synthetic-*.json"))
    assert 2 <= len(done) < 6, "the kill should land between shards"
    names = [p.stem for p in done]
    before = {p: p.stat().st_mtime_ns for p in done}
    before.update({p: p.stat().st_mtime_ns for n in names for p in (out / "megatron").glob(f"*/{n}.*")})

    p = run("pretrain", out, *PRETRAIN_ARGS, "workers=1")
    assert f"resume: {len(done)}/6 shards already done" in p.stdout
    assert summary(p)["shards_computed"] == 6 - len(done)
    assert {q: q.stat().st_mtime_ns for q in before} == before
    # the resumed output equals an uninterrupted run (with 2 workers): only RESULT.json's config differs
    mine, ref = tree_hashes(out), tree_hashes(pretrain[0])
    assert not [k for k in mine if ".tmp-" in k]
    assert {k: v for k, v in mine.items() if k != "RESULT.json"} == {k: v for k, v in ref.items() if k != "RESULT.json"}


def test_sigterm_exits_75_and_keeps_finished_shards(tmp_path):
    out = tmp_path / "preempted"
    proc = subprocess.Popen(command("pretrain", out, *PRETRAIN_ARGS, "workers=1"), env=env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "shards").glob("synthetic-*.json")) and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # what Slurm sends on preemption / time limit
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err[-3000:]
    assert "rerun the same command to resume" in err and not (out / "RESULT.json").exists()
    assert list((out / "shards").glob("synthetic-*.json"))
    # The local Ray head it started (raylet, GCS, agents, workers) went with it: nothing left in its session.
    deadline = time.time() + 15  # SIGKILLed children take a moment to be reaped
    while (left := _alive_in_session(proc.pid)) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"


def _alive_in_session(sid: int) -> list[str]:
    import psutil

    alive = []
    for p in psutil.process_iter(["status", "name"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid}:{p.info['name']}")
        except (ProcessLookupError, PermissionError):
            pass
    return alive


def _start_s3(tmp: Path, files: dict[str, bytes]) -> tuple[object, dict]:
    moto = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    import s3fs

    opts = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"}}
    fs = s3fs.S3FileSystem(**opts)
    fs.mkdir("data")
    for name, data in files.items():
        fs.pipe(f"data/{name}", data)
    return server, opts


def test_pretrain_user_data_blend_with_skipped_lines(pretrain, tmp_path):
    import datasets
    import pyarrow as pa

    web = tmp_path / "web.jsonl"
    good = [{"text": f"web page {i}: the river Ondo flows north.\nline two {i}"} for i in range(300)]
    lines = [json.dumps(r) for r in good]
    lines.insert(5, "{not json")  # line 6
    lines.insert(10, json.dumps({"title": "no text field"}))  # line 11
    web.write_text("\n".join(lines) + "\n")
    pq.write_table(pa.table({"content": [f"def f{i}(): return {i}" for i in range(200)]}), tmp_path / "code.parquet",
                   row_group_size=64)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("".join(f"note {i} about Zoria\n" for i in range(100)))
    (tmp_path / "notes" / "b.txt").write_text("".join(f"note {i} about Kelmo\n\n" for i in range(50)))
    datasets.Dataset.from_dict({"text": [f"hf row {i}" for i in range(120)]}).save_to_disk(str(tmp_path / "hfds"))
    server, opts = _start_s3(tmp_path, {"books.jsonl": "".join(json.dumps({"text": f"book {i}"}) + "\n"
                                                                for i in range(80)).encode()})
    try:
        out = tmp_path / "out"
        p = run("pretrain", out, "sources.synthetic.documents=400", "num_shards=2", "on_error=skip",
                f"tokenizer.path={pretrain[0] / 'tokenizer'}",
                f"sources.web.uri={web}", "sources.web.weight=0.4",
                f"sources.code.uri={tmp_path / 'code.parquet'}", "sources.code.text_key=content",
                "sources.code.weight=0.2", "sources.code.num_shards=3",
                f"sources.notes.uri={tmp_path / 'notes'}", "sources.notes.format=text", "sources.notes.weight=0.1",
                f"sources.hf.uri={tmp_path / 'hfds'}", "sources.hf.weight=0.1",
                "sources.books.uri=s3://data/books.jsonl", "sources.books.weight=0.2",
                f"sources.books.storage_options={json.dumps(opts)}")
    finally:
        server.stop()
    stats = json.loads((out / "RESULT.json").read_text())["stats"]
    src = stats["sources"]
    assert src["web"]["skipped"] == 2 and stats["skipped"] == 2
    assert any(f"{web}:6: invalid JSON" in e for e in src["web"]["skipped_examples"])
    assert any(f"{web}:11: field 'text'" in e for e in src["web"]["skipped_examples"])
    expect = {"web": 300, "code": 200, "notes": 150, "hf": 120, "books": 80}
    for name, n in expect.items():
        assert sum(src[name]["documents"].values()) == n, name
    prefixes, weights = load_blend(out, "train")
    per_source: dict[str, float] = {}
    for prefix, w in zip(prefixes, weights):
        name = Path(prefix).name.rsplit("-", 1)[0]
        per_source[name] = per_source.get(name, 0) + w
    want = {"synthetic": 1.0, "web": 0.4, "code": 0.2, "notes": 0.1, "hf": 0.1, "books": 0.2}
    total = sum(want.values())
    assert per_source == pytest.approx({k: v / total for k, v in want.items()})
    # a user document round-trips: text + eod
    tok = tokenizer(out / "tokenizer")
    texts = set()
    for prefix in prefixes:
        if "/code-" in prefix:
            ids, lengths = read_indexed(prefix)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            texts.update(tok.decode(ids[s:s + n - 1].tolist()) for s, n in zip(starts, lengths))
            assert all(ids[s + n - 1] == 0 for s, n in zip(starts, lengths))
    assert "def f7(): return 7" in texts


# ---- errors: one line, exit 2, nothing written as RESULT.json -------------------------------------
def test_malformed_line_names_file_and_line(pretrain, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "one"}\n{"text": "two"}\n{"text": oops}\n{"text": "four"}\n')
    out = tmp_path / "out"
    # with an existing tokenizer the error comes from a Ray task (no BPE sample read in the driver)
    p = run("pretrain", out, "sources.synthetic.documents=100", "num_shards=1", f"sources.user.uri={bad}",
            f"tokenizer.path={pretrain[0] / 'tokenizer'}", ok=False)
    assert_failed(p, out, f"{bad}:3: invalid JSON", "on_error: skip")


@pytest.mark.parametrize("case", ["empty", "unknown_format", "no_extension_format", "missing_file", "typo_key"])
def test_bad_inputs_fail_fast_with_one_line(case, tmp_path):
    out = tmp_path / "out"
    f = tmp_path / "in.jsonl"
    args, needles = [], []
    if case == "empty":
        f.write_text("")
        args, needles = [f"sources.user.uri={f}"], ["input is empty", str(f)]
    elif case == "unknown_format":
        f.write_text('{"text": "x"}\n')
        args, needles = [f"sources.user.uri={f}", "sources.user.format=jsnl"], ["unknown format 'jsnl'", "jsonl"]
    elif case == "no_extension_format":
        (tmp_path / "in.csv").write_text("text\nx\n")
        args, needles = [f"sources.user.uri={tmp_path / 'in.csv'}"], ["cannot tell the format", "sources.user.format"]
    elif case == "missing_file":
        args, needles = [f"sources.user.uri={tmp_path / 'nope.jsonl'}"], ["no such file", "nope.jsonl"]
    else:
        args, needles = ["sources.synthetic.documets=10"], ["sources.synthetic.documets", "did you mean 'documents'"]
    assert_failed(run("pretrain", out, *args, ok=False), out, *needles)
    # checked before any work: no tokenizer trained (step 1), so no shard written and no Ray started (step 2)
    assert not (out / "tokenizer").exists() and not list(out.glob("shards/*"))


def test_sft_rl_need_a_resolved_tokenizer_and_the_same_world(pretrain, tmp_path):
    out = tmp_path / "out"
    p = run("sft", out, ok=False)  # tiny.yaml's ${art:nano3-pretrain-data,path} needs the toolkit
    assert_failed(p, out, "tokenizer_path")
    p = run("rl", out, f"tokenizer_path={tmp_path / 'missing'}", ok=False)
    assert_failed(p, out, "no tokenizer at")
    p = run("rl", out, f"tokenizer_path={pretrain[0] / 'tokenizer'}", "world.countries=41", ok=False)
    assert_failed(p, out, "world", "countries")


# ---- SFT ----------------------------------------------------------------------------------------
def expected_mask(ids: list[int], assistant_id: int, newline_id: int) -> list[int]:
    """1 from the token after `<|im_start|>assistant\\n` through the next <|im_end|> (id 3)."""
    mask, inside = [], False
    for t, tok_id in enumerate(ids):
        mask.append(1 if inside else 0)
        if inside and tok_id == 3:
            inside = False
        if t >= 2 and ids[t - 2:t + 1] == [2, assistant_id, newline_id]:
            inside = True
    return mask


def test_sft_packed_parquet_masks_only_assistant_tokens(sft, tiny_world):
    result = json.loads((sft / "RESULT.json").read_text())
    seq = result["stats"]["seq_length"]
    tok = tokenizer(sft / "tokenizer")
    assistant_id, newline_id = tok.token_to_id("assistant"), tok.encode("\n").ids[0]
    questions = {it.question: it for items in tiny_world.items.values() for it in items}
    for split in ("train", "valid", "test"):
        files = sorted((sft / "splits" / split).glob("*.parquet"))
        assert files, split
        table = pq.read_table(files)
        assert table.column_names == ["input_ids", "loss_mask", "boundaries", "num_tokens"]
        assert str(table.schema.field("input_ids").type) == "list<element: int32>"
        assert table.num_rows == result["stats"]["rows"][split]
        for row in table.to_pylist():
            ids, mask, bounds, n = row["input_ids"], row["loss_mask"], row["boundaries"], row["num_tokens"]
            assert len(ids) == len(mask) == seq and bounds[0] == 0 and bounds[-1] == n
            assert all(a < b for a, b in zip(bounds, bounds[1:])) and set(ids[n:]) <= {1} and not any(mask[n:])
            assert mask == expected_mask(ids, assistant_id, newline_id)
            for a, b in zip(bounds, bounds[1:]):
                text = tok.decode(ids[a:b], skip_special_tokens=False)
                assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_end|>\n")
                for q in text.split("<|im_start|>user\n")[1:]:
                    item = questions[q.split("<|im_end|>")[0]]
                    assert item.split == split and not item.rl_only  # held-out and RL-only stay out
    blend = json.loads((sft / "blend.json").read_text())
    assert blend["splits"]["train"]["paths"] and abs(sum(blend["splits"]["train"]["weights"]) - 1) < 1e-9


def test_sft_rerun_is_byte_identical(sft, pretrain, tmp_path):
    out = tmp_path / "sft2"
    cfg = resolved_config("sft", tmp_path, tokenizer_path=str(pretrain[0] / "tokenizer"), output_dir=str(out))
    run("sft", out, *SFT_ARGS, config=str(cfg))
    assert tree_hashes(out) == tree_hashes(sft)


def test_sft_user_chats_with_on_error_skip(pretrain, tmp_path):
    chats = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}"}]}
            for i in range(60)]
    lines = [json.dumps(r) for r in rows] + [json.dumps({"messages": [{"role": "user", "content": "no answer"}]})]
    chats.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    run("sft", out, f"tokenizer_path={pretrain[0] / 'tokenizer'}", "sources.synthetic.conversations=200",
        "num_shards=1", f"sources.chat.uri={chats}", "sources.chat.weight=0.5", "on_error=skip")
    stats = json.loads((out / "RESULT.json").read_text())["stats"]
    assert stats["skipped"] == 1 and f"{chats}:61:" in stats["sources"]["chat"]["skipped_examples"][0]
    assert sum(stats["sources"]["chat"]["conversations"].values()) == 60


# ---- RL -----------------------------------------------------------------------------------------
def test_rl_prompts_manifest_and_heldout(rl, tiny_world, pretrain, tmp_path):
    manifest = json.loads((rl / "manifest.json").read_text())
    assert manifest["answer_check"] == "recipes.nano3.common.answers:answer_check"
    tok = tokenizer(rl / "tokenizer")
    seen: dict[str, str] = {}
    for split in ("train", "valid", "test"):
        rows = [json.loads(x) for x in (rl / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == manifest["counts"][split]["prompts"] > 0
        assert abs(sum(r["weight"] for r in rows) - 1) < 1e-9
        for r in rows:
            assert r["prompt"].endswith("<|im_start|>assistant\n") and tok.encode(r["prompt"]).ids == r["prompt_ids"]
            assert answer_check(r["reference"] + "<|im_end|>", r["reference"])
            assert r["id"] not in seen, "an item is in two splits"
            seen[r["id"]] = split
    by_key = {it.key: it for items in tiny_world.items.values() for it in items}
    assert all(by_key[k].split == sp for k, sp in seen.items())
    # RL trains on the train questions kept out of SFT (world.rl_share), and on nothing else
    assert {k for k, sp in seen.items() if sp == "train"} == {it.key for it in tiny_world.rl_questions()}
    assert all(by_key[k].rl_only for k, sp in seen.items() if sp == "train")
    # progress.json (what the stage's watcher reads): every candidate row counted, no times in it
    n = sum(c["prompts"] + c["dropped_too_long"] for c in manifest["counts"].values())
    assert json.loads((rl / "progress.json").read_text()) == {"done": n, "of": n, "unit": "rows"}
    # byte-identical rerun
    again = tmp_path / "rl2"
    run("rl", again, f"tokenizer_path={pretrain[0] / 'tokenizer'}")
    assert tree_hashes(again) == tree_hashes(rl)


def test_rl_user_prompts_and_malformed_record(pretrain, tmp_path):
    import pyarrow as pa

    f = tmp_path / "math.parquet"
    pq.write_table(pa.table({"problem": ["2 + 2?", "3 * 3?", None], "answer": ["4", "9", "0"]}), f)
    out = tmp_path / "out"
    tok = f"tokenizer_path={pretrain[0] / 'tokenizer'}"
    p = run("rl", out, tok, f"sources.math.uri={f}", "sources.math.prompt_key=problem", ok=False)
    assert_failed(p, out, f"{f} row 2", "field 'problem'")
    run("rl", out, tok, f"sources.math.uri={f}", "sources.math.prompt_key=problem", "on_error=skip",
        "splits.valid=0", "splits.test=0")
    rows = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    user = [r for r in rows if r["source"] == "math"]
    assert sorted(r["reference"] for r in user) == ["4", "9"] and all(r["task"] == "user" for r in user)
    assert json.loads((out / "RESULT.json").read_text())["stats"]["skipped"] == 1


# ---- shared pieces used by the trainers and eval ------------------------------------------------
def test_answer_check():
    assert answer_check("7<|im_end|>", "7") and answer_check(" -4\n5 + 1 = 6", "-4")
    assert not answer_check("41", "14") and not answer_check("", "3") and not answer_check("4", "-4")
    assert answer_check(" Kelmo.", "Kelmo") and answer_check("kelmo<|endoftext|>", "Kelmo")
    assert not answer_check("Kelmoton", "Kelmo")
    assert extract_answer("  blue<|im_end|>\nmore") == "blue"


def test_world_is_deterministic_and_splits_are_stable():
    a, b = World(WorldConfig()), World(WorldConfig())
    assert a.countries == b.countries and a.items == b.items
    other = World(WorldConfig(seed=7))
    assert other.countries != a.countries
    for items in a.items.values():
        assert {it.split for it in items} <= {"train", "valid", "test"}
    arith = a.items["arith"]
    assert 0.1 < sum(it.split != "train" for it in arith) / len(arith) < 0.3
    assert not any(it.rl_only for items in a.items.values() for it in items)  # rl_share 0: RL uses every train item
    assert a.rl_questions() == a.questions("train")


def test_world_rl_share_keeps_train_questions_out_of_sft():
    world = World(WorldConfig(rl_share=0.25))
    train = world.questions("train")
    rl = world.rl_questions()
    assert 0.15 < len(rl) / len(train) < 0.35 and all(it.rl_only and it.split == "train" for it in rl)
    assert [it.split for it in world.questions("valid")] == [it.split for it in World(WorldConfig()).questions("valid")]
    rng = random.Random(0)
    asked = {world.sample_question(rng, "train").key for _ in range(5000)}
    assert asked and not asked & {it.key for it in rl}


def test_world_text_options_state_more_but_ask_nothing_held_out():
    """skills_stated, augment and profiles change what pretrain text states, never which questions
    any stage asks: held-out questions stay out of Q&A lines, SFT chats and RL prompts."""
    plain = World(WorldConfig(pretrain_qa=0.2, rl_share=0.25))
    world = World(WorldConfig(pretrain_qa=0.2, rl_share=0.25, skills_stated=True, augment=True, profiles=1.0))
    splits = lambda w: [(it.key, it.split, it.rl_only) for items in w.items.values() for it in items]  # noqa: E731
    assert splits(world) == splits(plain)

    def text(w: World) -> set[str]:
        rng = random.Random(0)
        return {line for _ in range(600) for line in w.pretrain_document(rng, "train", 16).split("\n")}

    lines, plain_lines = text(world), text(plain)
    held_out_arith = world.pool("arith", "test")
    assert sum(any(s in lines for s in it.statements) for it in held_out_arith) > 0.8 * len(held_out_arith)
    assert not any(s in plain_lines for it in held_out_arith for s in it.statements)
    assert "7 plus 4 is 11." in lines and len(world.items["capital"][0].statements) == 4  # augment
    # profiles: every fact about a country in one line, its name in each sentence
    country = world.countries[0]["name"]
    facts = [it for kind in ("capital", "color", "rivers") for it in world.items[kind]
             if it.key == f"{kind}:{country}"]
    profile = next(line for line in lines if line.count(country) == 3)
    assert all(any(s in profile for s in it.statements) for it in facts)
    held_out = {it.question for split in ("valid", "test") for it in world.questions(split)}
    assert not any(line.startswith("Question: ") and line[len("Question: "):].split(" Answer: ")[0] in held_out
                   for line in lines)
    rng = random.Random(1)
    assert not any(world.sample_question(rng, "train").question in held_out for _ in range(2000))


def test_restated_replies_write_the_asked_name_after_a_space_as_the_question_does():
    """A byte-level BPE gives a name at a line start other tokens than the same name after a space
    ("Vou|reilian" vs "ĠVou|reilian"), so a reply that opens with the name cannot copy it from the
    question: the tiny SFT model answered "Where does <held-out person> live?" with another person's
    name (0-22 % right while it completed "<person> lives in" right 78 %). Every restated reply names
    the entity after a space, the way the question does."""
    world = World(WorldConfig(augment=True))
    for kind in ("capital", "color", "rivers", "home", "home_capital"):
        for it in world.items[kind]:
            assert f" {it.subject} " in f"{it.question} ".replace("?", " ") and f" {it.subject} " in it.restated
            assert not it.restated.startswith(it.subject)
            assert it.restated.rstrip(".").endswith(it.answer)


@pytest.mark.parametrize("key,value", [("rl_share", 1.0), ("rl_share", -0.1), ("pretrain_qa", "lots"),
                                       ("pretrain_qa", True), ("profiles", 1.5), ("augment", "yes"),
                                       ("skills_stated", 1)])
def test_world_fractions_are_checked(key, value):
    with pytest.raises(ConfigError, match=f"world.{key}"):
        WorldConfig.from_dict({key: value})
