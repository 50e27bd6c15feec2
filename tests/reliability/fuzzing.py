"""Bad inputs, generated: each must end in a project error and leave no partial artifact version.

Shared by tests/reliability/test_fuzz_inputs.py (CI count) and benchmarks/fuzz_inputs.py (1,000).

Every case is built to be wrong (a mutation that no valid input survives), from a seeded RNG,
over the places a user hands us input:

    runspec        a real recipe header, mutated (unknown key, wrong type, broken TOML, ...)
    env_toml       an env.toml with a broken profile / garbage, through `nemotron ... --run fz --dry-run`
    dotlist        CLI overrides that cannot apply (bad key, `+` on an existing key, bad YAML, ...)
    train_config   trainer overrides with wrong types/ranges/unknown keys (settings.load, as the job runs it)
    pretrain_data  a copy of real bin/idx + blend.json data, corrupted, read by the pretrain trainer's reader
    sft_data       a packed SFT Parquet, corrupted, read by the SFT trainer's reader
    user_data      JSONL / Parquet / text sources for data prep, corrupted, read by the data-prep readers
    data_import    `nemotron nano3 data|model import STAGE DIR` on wrong layouts
    artifact_ref   `nemotron artifacts show|lineage|verify BAD` and `${art:...}` overrides

How a case is judged (`run_case`):
- CLI cases call `nemotron_cli.app.main(argv)` in this process: a project error is a
  non-zero exit with exactly one stderr line `error: ...`; any exception escaping main, or
  'Traceback' in the output, is a traceback.
- Library cases (the readers a job runs, whose entry wrapper prints NemotronError as one line and
  exits 2): the call must raise a NemotronError with a one-line message; any other exception
  is a traceback.
- Success (exit 0 / no exception) is "accepted": a bad input that got through.
Partial artifacts: the file tree of the artifact registry the CLI uses is compared before and
after every case; any new, missing or changed file is one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import string
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
PRETRAIN_SCRIPT = REPO / "recipes/nano3/stage0_pretrain/train.py"
SFT_SCRIPT = REPO / "recipes/nano3/stage1_sft/train.py"
ARTIFACT = "nano3-pretrain-data"  # imported once into the fuzz registry, so refs to it get past "unknown name"


@dataclass
class Case:
    category: str
    label: str
    cli: list[str] | None = None  # argv for nemotron main(), or
    call: Callable[[], object] | None = None  # a library call
    env: dict[str, str] = field(default_factory=dict)  # extra environment for this case


@dataclass
class Outcome:
    kind: str  # "error" | "traceback" | "accepted"
    detail: str


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    per_category: Counter = field(default_factory=Counter)
    partial: list[str] = field(default_factory=list)  # labels of cases that changed the registry
    bad: list[str] = field(default_factory=list)  # "category label: kind: detail" of tracebacks/accepted

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    def line(self) -> str:
        return (f"{self.total} inputs, {self.outcomes['traceback']} tracebacks, {len(self.partial)} partial artifacts, "
                f"{self.outcomes['accepted']} accepted")


# ---------------------------------------------------------------------------------------- judging
def _one_line_error(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > len("error: ")


@contextlib.contextmanager
def _environ(extra: dict[str, str]):
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_case(case: Case) -> Outcome:
    from nemotron_cli.app import main
    from nemotron_core.errors import NemotronError

    out, err = io.StringIO(), io.StringIO()
    with _environ(case.env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if case.cli is not None:
                rc = main(list(case.cli))
            else:
                case.call()
                rc = 0
        except NemotronError as e:
            if case.cli is not None:  # main() must have caught it
                return Outcome("traceback", f"NemotronError escaped main(): {e}")
            msg = str(e)
            return Outcome("error", msg) if msg and "\n" not in msg else Outcome("traceback", f"multi-line: {msg!r}")
        except BaseException as e:  # noqa: BLE001 - anything else is what a user would see as a traceback
            return Outcome("traceback", f"{type(e).__name__}: {str(e)[:300]}")
    text = out.getvalue() + err.getvalue()
    if "Traceback" in text:
        return Outcome("traceback", text[-500:])
    if rc == 0:
        return Outcome("accepted", out.getvalue()[-200:])
    if case.cli is not None and not _one_line_error(err.getvalue()):
        return Outcome("traceback", f"rc={rc}, stderr not one 'error:' line: {err.getvalue()[-500:]!r}")
    return Outcome("error", err.getvalue().strip())


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and folder under root."""
    out = {}
    if root.exists():
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                out[str(p.relative_to(root))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns if p.is_file() else 0)
    return out


# ---------------------------------------------------------------------------------------- generating
class Fuzzer:
    """Builds cases in `work` (scratch files) against a registry at `state`/artifacts.

    pretrain_data / sft_data: real tiny data-prep outputs (read-only here: corruptions go to copies).
    """

    def __init__(self, work: Path, state: Path, pretrain_data: Path, sft_data: Path, seed: int = 0):
        self.work, self.state = work, state
        self.pretrain_data, self.sft_data = Path(pretrain_data), Path(sft_data)
        self.rng = random.Random(seed)
        self.n = 0
        self.registry_root = state / "artifacts"
        self.env = {"NEMOTRON_STATE_DIR": str(state), "NEMOTRON_ENV_FILE": ""}
        self.generators: dict[str, Callable[[Path], Case]] = {
            "runspec": self.runspec, "env_toml": self.env_toml, "dotlist": self.dotlist,
            "train_config": self.train_config, "pretrain_data": self.pretrain_files, "sft_data": self.sft_files,
            "user_data": self.user_data, "data_import": self.data_import, "artifact_ref": self.artifact_ref,
        }

    # -- set-up and the run loop
    def prepare(self) -> None:
        """Register the real pretrain data once, so refs to ARTIFACT resolve (the registry the CLI uses)."""
        from nemotron_cli.import_cmd import import_source

        self.work.mkdir(parents=True, exist_ok=True)
        with _environ(self.env), contextlib.redirect_stdout(io.StringIO()):
            from nemotron_core.artifacts import open_registry

            if ARTIFACT not in open_registry({"root": str(self.registry_root)}).names():
                import_source("data", "pretrain", str(self.pretrain_data), root=str(self.registry_root))

    def cases(self, count: int):
        names = list(self.generators)
        for i in range(count):
            category = names[i % len(names)]
            self.n += 1
            folder = self.work / f"{self.n:05d}-{category}"
            folder.mkdir(parents=True)
            case = self.generators[category](folder)
            case.env = {**self.env, **case.env}
            yield case

    def run(self, count: int, on_case: Callable[[Case, Outcome], None] | None = None) -> Tally:
        self.prepare()
        tally = Tally()
        for case in self.cases(count):
            before = tree(self.registry_root)
            outcome = run_case(case)
            after = tree(self.registry_root)
            tally.outcomes[outcome.kind] += 1
            tally.per_category[case.category] += 1
            if after != before:
                changed = sorted(set(after) ^ set(before) | {k for k in after if k in before and after[k] != before[k]})
                tally.partial.append(f"{case.category} {case.label}: {changed[:5]}")
            if outcome.kind != "error":
                tally.bad.append(f"{case.category} {case.label}: {outcome.kind}: {outcome.detail}")
            if on_case:
                on_case(case, outcome)
            shutil.rmtree(self.work / f"{self.n:05d}-{case.category}", ignore_errors=True)
        return tally

    # -- small random helpers
    def word(self, lo: int = 3, hi: int = 10) -> str:
        return "".join(self.rng.choice(string.ascii_lowercase) for _ in range(self.rng.randint(lo, hi)))

    def junk(self, n: int | None = None) -> str:
        alphabet = string.printable + "éß€🙂\u0000"
        return "".join(self.rng.choice(alphabet) for _ in range(n or self.rng.randint(1, 30)))

    def pick(self, options):
        return self.rng.choice(list(options))

    # -- runspec: a real header, mutated
    def runspec(self, folder: Path) -> Case:
        from nemotron_core.runspec import parse_text

        text = PRETRAIN_SCRIPT.read_text()
        head, end = text.split("# ///\n", 1)[0], "# ///\n"
        lines = head.splitlines(keepends=True)
        keyed = [i for i, ln in enumerate(lines) if "=" in ln]
        i = self.pick(keyed)
        key = lines[i][2:].split("=")[0].strip()
        wrong = {"schema": ['"2"', "1", '""'], "name": ['""', "5", "[1]"], "image": ["3", "true"],
                 "setup": ["[1, 2]", "{a = 1}"],
                 "launch": [f'"{self.word()}"', "7"], "dir": [f'"./{self.word()}"', "false"],
                 "default": [f'"{self.word()}"', "1.5"], "format": [f'"{self.word()}"', "[]"],
                 "nodes": ["0", "-3", '"two"', "1.5", "true"], "gpus_per_node": ["-1", '"x"', "2.5", "false"]}
        mutation = self.pick(["unknown_key", "wrong_value", "broken_toml", "drop_name", "unterminated", "two_blocks"])
        if mutation == "unknown_key":
            lines.insert(i + 1, f"# {self.word()}_{self.word()} = {self.rng.randint(0, 9)}\n")
        elif mutation == "wrong_value":
            lines[i] = f"# {key} = {self.pick(wrong.get(key, ['[[[']))}\n"
        elif mutation == "broken_toml":
            pos = lines[i].index("=")  # between key and '=': no string around it can absorb the breaker
            lines[i] = lines[i][:pos] + self.pick(['"', "[", "= =", "{", "\\", "]", "#="]) + lines[i][pos:]
        elif mutation == "drop_name":
            lines = [ln for ln in lines if not ln.startswith("# name =")]
        new = "".join(lines)
        if mutation == "unterminated":
            body = new
        elif mutation == "two_blocks":
            body = new + end + new + end
        else:
            body = new + end
        (folder / "config").symlink_to(PRETRAIN_SCRIPT.parent / "config")
        script = folder / "train.py"
        return Case("runspec", f"{mutation} {key}", call=lambda: parse_text(body + "print(1)\n", script))

    # -- env.toml
    def env_toml(self, folder: Path) -> Case:
        base = ['[slurm-base]\nexecutor = "slurm"\npartition = "debug"\n']
        mutation = self.pick(["bad_executor", "unknown_parent", "cycle", "extends_type", "secrets_type",
                              "not_a_table", "garbage", "broken_toml", "missing_profile"])
        w = self.word()
        fz = {
            "bad_executor": f'[fz]\nexecutor = "{w}"\n',
            "unknown_parent": f'[fz]\nextends = "{w}"\n',
            "cycle": f'[fz]\nextends = "{w}"\n[{w}]\nextends = "fz"\n',
            "extends_type": f"[fz]\nextends = {self.pick(['3', 'true', '{a = 1}', '1.5'])}\n",
            "secrets_type": '[fz]\nexecutor = "local"\nsecrets = ' + self.pick(['"HF_TOKEN"', "3", "{a = 1}"]) + "\n",
            "not_a_table": "fz = " + self.pick(["1", '"x"', "[1, 2]"]) + "\n",
            "garbage": self.junk(self.rng.randint(1, 200)),
            "broken_toml": f'[fz\nexecutor = "local"\n' if self.rng.random() < 0.5 else '[fz]\nexecutor = "local\n',
            "missing_profile": f'[{w}]\nexecutor = "local"\n',
        }[mutation]
        path = folder / "env.toml"
        path.write_text("".join(base) + fz, encoding="utf-8")
        argv = ["nano3", "pretrain", "--run", "fz", "--dry-run", "-c", "tiny", f"data_path={self.pretrain_data}"]
        if self.rng.random() < 0.5:
            argv = argv[:2] + argv[4:] + ["--run", "fz"]  # the global option after the subcommand
        return Case("env_toml", mutation, cli=argv, env={"NEMOTRON_ENV_FILE": str(path)})

    # -- CLI dotlists
    _KEYS = ("train.max_steps", "optim.lr", "model.hidden_size", "log.wandb.mode", "checkpoint.interval", "seed")

    def dotlist(self, folder: Path) -> Case:
        key, w = self.pick(self._KEYS), self.word()
        mutation = self.pick(["double_dot", "plus_existing", "remove_missing", "no_value", "under_a_value",
                              "bad_yaml", "missing_interpolation", "not_an_override", "unknown_section"])
        bad = {
            "double_dot": f"{key.replace('.', '..', 1) if '.' in key else key + '..' + w}=1",
            "plus_existing": f"+{key}=1",
            "remove_missing": f"~{w}.{self.word()}",
            "no_value": key,
            "under_a_value": f"{key}.{w}=1",
            "bad_yaml": f"{key}=" + self.pick([f"[{w},", f"{{a: [{w}", "[", "{", f"{w}: b: c", f"*{w}", f"[{w}]]"]),
            "missing_interpolation": f"{key}=${{{w}}}",
            "not_an_override": self.pick(["--", "@", "%", "/"]) + w + self.pick(["", "=", "1"]),
            "unknown_section": f"{w}.{self.word()}=1",
        }[mutation]
        good = [f"{self.pick(self._KEYS[:2])}={self.rng.randint(1, 9)}"] if self.rng.random() < 0.5 else []
        argv = ["nano3", self.pick(["pretrain", "sft"]), "--dry-run", "-c", "tiny", f"data_path={self.pretrain_data}",
                *good, bad]
        if argv[1] == "sft":
            argv = [a.replace("model.hidden_size", "train.micro_batch_size") for a in argv]
        return Case("dotlist", f"{mutation} {bad!r}", cli=argv)

    # -- the trainers' own config check (what a job runs on the resolved train.yaml)
    def train_config(self, folder: Path) -> Case:
        from recipes.nano3.training import settings

        kind = self.pick(["pretrain", "sft"])
        script = PRETRAIN_SCRIPT if kind == "pretrain" else SFT_SCRIPT
        wrong = {"train.max_steps": ["0", "-5", "abc", "1.5", "[1]"], "optim.lr": ["-1", "abc", "[]"],
                 "train.micro_batch_size": ["0", "x", "-2"], "resume": [self.word()], "runtime.device": [self.word()],
                 "runtime.precision": ["fp8", self.word()], "log.wandb.mode": [self.word()],
                 "checkpoint.interval": ["-1", "x", "1.5"], "checkpoint.keep": ["0", "x"], "seed": ["x", "1.5"],
                 "train.seq_length": ["0", "x"]}
        mutation = self.pick(["wrong_value", "unknown_key"])
        if mutation == "wrong_value":
            key = self.pick(wrong)
            item = f"{key}={self.pick(wrong[key])}"
        else:
            item = f"{self.pick(['train', 'optim', 'runtime', 'log', 'checkpoint'])}.{self.word()}_x={self.rng.randint(0, 9)}"
            item = "+" + item if self.rng.random() < 0.5 else item
        data = self.pretrain_data if kind == "pretrain" else self.sft_data
        argv = ["--config", "tiny", f"output_dir={folder / 'out'}", f"data_path={data}", item]
        return Case("train_config", f"{kind} {item}", call=lambda: settings.load(argv, script=script, kind=kind))

    # -- pretrain data: bin/idx + blend.json, corrupted, read by the pretrain trainer's reader
    def _copy(self, src: Path, dst: Path) -> None:
        """Hard-link copy; a corrupted file is always written anew (never through a link)."""
        shutil.copytree(src, dst, copy_function=os.link)

    def _rewrite(self, path: Path, data: bytes) -> None:
        path.unlink()
        path.write_bytes(data)

    def _mangle(self, data: bytes) -> tuple[str, bytes]:
        how = self.pick(["truncate", "flip", "garbage", "empty", "append"])
        if how == "truncate" and len(data) > 1:
            return how, data[:self.rng.randrange(0, len(data))]
        if how == "flip" and data:
            b = bytearray(data)
            for _ in range(self.rng.randint(1, 4)):
                i = self.rng.randrange(0, min(len(b), 64))  # headers and footers are where a flip cannot pass
                b[i] ^= 1 << self.rng.randrange(8)
            return how, bytes(b)
        if how == "append":
            return how, data + os.urandom(self.rng.randint(1, 64))
        if how == "empty":
            return how, b""
        return "garbage", os.urandom(self.rng.randint(1, 512))

    def pretrain_files(self, folder: Path) -> Case:
        from recipes.nano3.training.windows import WindowData

        data = folder / "data"
        self._copy(self.pretrain_data, data)
        target = self.pick(["idx", "idx", "bin", "blend"])
        if target == "blend":
            blend = data / "blend.json"
            options = [("garbage", self.junk().encode("utf-8", "surrogatepass")),
                       ("wrong_shape", json.dumps({"train": self.pick([3, "x", [1], {"paths": 3}])}).encode()),
                       ("missing_prefix", json.dumps({"train": [f"megatron/train/{self.word()}"]}).encode()),
                       ("bad_weights", json.dumps({"train": {"paths": ["megatron/train/synthetic-00000"],
                                                              "weights": [self.pick([-1, 0, "x", "nan", "inf", None])]}}).encode()),
                       ("weights_type", json.dumps({"train": {"paths": ["megatron/train/synthetic-00000"],
                                                               "weights": self.pick([3, "x", {"a": 1}])}}).encode())]
            how, new = self.pick(options)
            self._rewrite(blend, new)
        else:
            shard = data / "megatron" / "train" / f"synthetic-0000{self.rng.randrange(4)}.{target}"
            how, new = self._mangle(shard.read_bytes())
            while target == "bin" and how == "flip":  # a flipped token is still a token: not detectable by format
                how, new = self._mangle(shard.read_bytes())
            if target == "idx" and how == "flip":  # flip only where the index describes itself
                b = bytearray(shard.read_bytes())
                i = self.rng.randrange(0, 34)
                b[i] ^= 1 << self.rng.randrange(8)
                new = bytes(b)
            self._rewrite(shard, new)
            how = f"{target} {how}"

        def read():
            w = WindowData(data, "train", 64, 1234, 1024)
            for start in range(0, w.windows, 4096):
                w.batch(start, min(4096, w.windows - start))
        return Case("pretrain_data", how, call=read)

    # -- SFT data: packed Parquet rows
    def sft_files(self, folder: Path) -> Case:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from recipes.nano3.training.packed import PackedData

        data = folder / "data"
        self._copy(self.sft_data, data)
        files = sorted((data / "splits" / "train").glob("*.parquet")) or sorted(data.rglob("*.parquet"))
        target = self.pick(files)
        mutation = self.pick(["bytes", "bytes", "columns", "ragged", "vocab"])
        if mutation == "bytes":
            how, new = self._mangle(target.read_bytes())
            if how in ("append", "flip"):  # the footer: Parquet readers check PAR1 at both ends
                new = target.read_bytes()[:-self.rng.randint(1, 8)]
                how = "footer cut"
            self._rewrite(target, new)
        else:
            table = pq.read_table(target)
            if mutation == "columns":
                table = table.drop_columns([self.pick(["input_ids", "loss_mask", "boundaries"])])
            elif mutation == "ragged":
                ids = table.column("input_ids").to_pylist()
                ids[self.rng.randrange(len(ids))] = ids[0][:-self.rng.randint(1, 5)]
                table = table.set_column(table.schema.get_field_index("input_ids"), "input_ids", pa.array(ids))
            else:
                ids = table.column("input_ids").to_pylist()
                ids[self.rng.randrange(len(ids))][self.rng.randrange(len(ids[0]))] = 1024 + self.rng.randint(0, 10 ** 6)
                table = table.set_column(table.schema.get_field_index("input_ids"), "input_ids", pa.array(ids))
            target.unlink()
            pq.write_table(table, target)
            how = mutation
        return Case("sft_data", f"{target.name} {how}", call=lambda: PackedData(data, "train", 1234, 1024))

    # -- user data for data prep: JSONL / Parquet / text through the data-prep readers
    def user_data(self, folder: Path) -> Case:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from recipes.nano3.common import readers

        good = [json.dumps({"text": f"{self.word()} {self.word()}"}) for _ in range(self.rng.randint(0, 20))]
        mutation = self.pick(["bad_json", "not_object", "no_text", "not_utf8", "empty", "unknown_ext",
                              "parquet_bytes", "parquet_column", "missing", "compressed", "bad_format", "mixed"])
        uri = folder / "in.jsonl"
        fmt = "auto"
        bad_line = {"bad_json": "{" + self.junk(10), "not_object": json.dumps(self.pick([[1, 2], "s", 3, None])),
                    "no_text": json.dumps({self.word(): "x", "text": self.pick([None, 3, [1], {"a": 1}])})}
        if mutation in bad_line:
            lines = good + [bad_line[mutation]] + good
            uri.write_text("\n".join(lines) + "\n")
        elif mutation == "not_utf8":
            uri.write_bytes(("\n".join(good) + "\n").encode() + b'{"text": "\xff\xfe"}\n')
        elif mutation == "empty":
            uri.write_text("")  # (blank lines are not an error: they are skipped like empty documents)
        elif mutation == "unknown_ext":
            uri = folder / f"in.{self.word(2, 4)}"
            uri.write_text("\n".join(good))
        elif mutation in ("parquet_bytes", "parquet_column"):
            uri = folder / "in.parquet"
            col = "text" if mutation == "parquet_bytes" else self.word()
            pq.write_table(pa.table({col: [self.word() for _ in range(5)]}), uri)
            if mutation == "parquet_bytes":
                _, new = self._mangle(uri.read_bytes())
                if new[:4] == b"PAR1" and new[-4:] == b"PAR1" and len(new) > 8:
                    new = new[:-3]
                self._rewrite(uri, new)
        elif mutation == "missing":
            uri = folder / f"{self.word()}/*.jsonl"
        elif mutation == "compressed":
            uri = folder / "in.jsonl.gz"
            uri.write_bytes(os.urandom(40))
        elif mutation == "bad_format":
            uri.write_text("\n".join(good))
            fmt = self.word()
        else:  # mixed formats in one source
            uri.write_text("\n".join(good))
            (folder / "b.txt").write_text("x\n")
            uri = folder
        raw = {"src": {"uri": str(uri), "format": fmt}}

        def read():
            from recipes.nano3.stage0_pretrain.data_prep import FILE_KEYS, SYNTHETIC_KEYS, documents

            sources = readers.normalize_sources(raw, num_shards=2, synthetic=SYNTHETIC_KEYS, files=FILE_KEYS)
            src = sources["src"]
            info = readers.resolve_source(src, "digest", columns=readers.fields(src, "text_key"))
            on_error = readers.OnError("raise")
            for _ in documents(readers.read_all(src, info, on_error, ("text",)), "text", on_error):
                pass
        return Case("user_data", mutation, call=read)

    # -- `nemotron nano3 data|model import` on wrong layouts
    def data_import(self, folder: Path) -> Case:
        src = folder / "src"
        src.mkdir()
        kind, stage = self.pick([("data", "pretrain"), ("data", "sft"), ("data", "rl"), ("model", "pretrain"),
                                 ("model", self.pick(["sft", "rl"]))])
        w = self.word()
        if kind == "data" and stage == "pretrain":
            mutation = self.pick(["no_pairs", "bin_only", "no_blend", "blend_garbage", "blend_missing_prefix",
                                  "blend_empty"])
            if mutation != "no_pairs":
                (src / f"{w}.bin").write_bytes(b"\0\0")
            if mutation not in ("no_pairs", "bin_only"):
                (src / f"{w}.idx").write_bytes(b"MMIDIDX\0\0")
            blend = {"blend_garbage": self.junk(), "blend_missing_prefix": json.dumps([f"{w}x"]),
                     "blend_empty": self.pick(["[]", "{}", '{"train": []}']), "no_pairs": '["a"]',
                     "bin_only": json.dumps([w])}.get(mutation)
            if blend is not None:
                (src / "blend.json").write_text(blend, errors="surrogatepass")
        elif kind == "data" and stage == "sft":
            mutation = self.pick(["no_train", "not_parquet", "empty"])
            if mutation == "no_train":
                (src / f"{self.pick(['validation', 'test', w])}.parquet").write_bytes(b"PAR1" + os.urandom(8) + b"PAR1")
            elif mutation == "not_parquet":
                (src / "train.parquet").write_bytes(os.urandom(self.rng.randint(0, 64)))
        elif kind == "data":
            mutation = self.pick(["no_jsonl", "no_manifest", "manifest_not_object", "manifest_missing_file",
                                  "manifest_garbage"])
            if mutation != "no_jsonl":
                (src / f"{w}.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
            manifest = {"manifest_not_object": json.dumps(self.pick([[1], "x", 3])),
                        "manifest_missing_file": json.dumps({"files": [f"{w}-other.jsonl"]}),
                        "manifest_garbage": self.junk(), "no_jsonl": "{}"}.get(mutation)
            if manifest is not None:
                (src / "manifest.json").write_text(manifest, errors="surrogatepass")
        else:
            mutation = self.pick(["no_config", "no_weights", "index_missing_shard", "config_garbage", "file_source"])
            if mutation != "no_config":
                (src / "config.json").write_text(self.junk() if mutation == "config_garbage" else '{"model_type": "llama"}',
                                                 errors="surrogatepass")
            if mutation in ("no_config", "config_garbage"):
                (src / "model.safetensors").write_bytes(os.urandom(16))
            if mutation == "index_missing_shard":
                (src / "model.safetensors.index.json").write_text(
                    json.dumps({"weight_map": {"w": f"model-{w}.safetensors"}}))
            if mutation == "file_source":
                src = src / "config.json"
        if self.rng.random() < 0.2:
            src, mutation = folder / "nonexistent", "missing_source"
        return Case("data_import", f"{kind} {stage} {mutation}",
                    cli=["nano3", kind, "import", stage, str(src), "--root", str(self.registry_root)])

    # -- artifact refs
    def artifact_ref(self, folder: Path) -> Case:
        w = self.word()
        ref = self.pick([
            f"{ARTIFACT}:v{self.rng.randint(2, 10 ** 6)}", f"{ARTIFACT}:{w}", f"{ARTIFACT}:v0", f"{ARTIFACT}:v-1",
            f"{w}", f"{w}:v1", ":v1", f"{ARTIFACT}:", f"{ARTIFACT}::v1", self.junk(), f"{w}/{w}:latest",
            f"{ARTIFACT}:v1:{w}", f"s3://{w}",
        ])
        ref = ref if ref.strip() else "  "
        mode = self.pick(["show", "lineage", "verify", "art"])
        if mode == "art":
            expr = self.pick([f"${{art:{ref}}}", f"${{art:{ref},path}}", f"${{art:{ARTIFACT},{w}}}",
                              f"${{art:{ARTIFACT}:v1,{w}}}", "${art:}", f"${{art:{ARTIFACT}"])
            if expr == f"${{art:{ref},path}}" and ref == f"{ARTIFACT}:v1:{w}":
                expr = f"${{art:{ref}}}"
            return Case("artifact_ref", f"{expr!r}",
                        cli=["nano3", "pretrain", "--dry-run", "-c", "tiny", f"data_path={expr}"])
        return Case("artifact_ref", f"{mode} {ref!r}", cli=["artifacts", mode, ref])
