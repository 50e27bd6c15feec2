"""Bad and hostile inputs, generated: each must end in a project error (or, where the input is
legal, do exactly what it says) and leave nothing behind it should not.

Shared by tests/reliability/test_fuzz_inputs.py (CI count) and benchmarks/fuzz_inputs.py (1,000).

Every case comes from a seeded RNG, round-robin over the places a user (or a co-user of a
shared cluster or registry) hands us input:

    runspec        a real recipe header, mutated (unknown key, wrong type, broken TOML, ...)
    env_toml       an env.toml with a broken profile / garbage, through `nemotron ... --run fz --dry-run`
    dotlist        CLI overrides that cannot apply (bad key, `+` on an existing key, bad YAML, ...)
    train_config   trainer overrides with wrong types/ranges/unknown keys (settings.load, as the job runs it)
    pretrain_data  a copy of real bin/idx + blend.json data, corrupted, read by the pretrain trainer's reader
    sft_data       a packed SFT Parquet, corrupted, read by the SFT trainer's reader
    user_data      JSONL / Parquet / text sources for data prep, corrupted, read by the data-prep readers
    data_import    `nemotron nano3 data|model import STAGE DIR` on wrong layouts
    artifact_ref   `nemotron artifacts show|lineage|verify BAD` and `${art:...}` overrides
and the hostile classes of issue 18 (fuzzing_hostile.py):
    shell_injection  shell metacharacters per profile field, control characters, bad env names
    secrets          secret sources x forms in configs, secret-named literals, secrets echoed as names
    registry_records crafted / corrupt version records and symlinked registry parts, a victim outside
    import_symlinks  links, loops and fifos in import sources, odd sources, --move from the registry
    yaml_bombs       alias / merge bombs, deep nesting, interpolation chains, cycles and doubling
    env_toml_types   wrong types, typos and control characters in env.toml
    dry_run          a random command with --dry-run anywhere (or mangled), trees hashed around it

How a case is judged (`run_case`):
- CLI cases call `nemotron_cli.app.main(argv)` in this process (or the same main() around
  the job test recipe's CLI): a project error is a non-zero exit with exactly one stderr line
  `error: ...`; any exception escaping main, 'Traceback' in the output, or an `error: internal
  error:` line (main's safety net: a bug) is a traceback.
- Library cases (the readers a job runs, whose entry wrapper prints NemotronError as one line and
  exits 2): the call must raise a NemotronError with a one-line message; any other exception
  is a traceback.
- Each case says what passes (`expect`): "error" (every input of the first nine kinds is wrong),
  "ok" (a legal hostile value: the command must succeed) or "either" (a plan or a one-line
  refusal are both right, e.g. a dry run). A success where an error was expected is "accepted";
  an error where success was expected, or a failed `check` (the value did not arrive intact,
  `bash -n` failed, a victim file changed...) is "failed".
Beyond the outcome, every case is checked for:
- partial artifacts: the file tree of the shared artifact registry before and after;
- a marker file: the per-case path that an injected `touch` would create (after the case and its
  check, which runs rendered scripts with stub srun/sbatch);
- secret hits: the per-case random secret values (HF_TOKEN and whatever the case adds) in the
  case's stdout/stderr, in any file written under the state folder during the case (except
  `secrets.env` files) and in the case's extra files (stub sbatch's environment, job output);
- dry-run changes: for a command line holding `--dry-run`, the state folder (artifact root
  included), the sources, HOME and XDG_RUNTIME_DIR hashed right before and after the call.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import secrets as random_secrets
import shutil
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.reliability.fuzzing_hostile import HostileCases

REPO = Path(__file__).resolve().parents[2]
PRETRAIN_SCRIPT = REPO / "recipes/nano3/stage0_pretrain/train.py"
SFT_SCRIPT = REPO / "recipes/nano3/stage1_sft/train.py"
ARTIFACT = "nano3-pretrain-data"  # imported once into the fuzz registry, so refs to it get past "unknown name"
INTERNAL_ERROR = "error: internal error:"  # main()'s safety net for an unexpected exception: a bug
FAILURE_KINDS = ("traceback", "accepted", "failed")


@dataclass
class Run:
    """What a case's `check` sees: the exit code, the output and the raw verdict ("error" or "ok")."""
    rc: int
    out: str
    err: str
    kind: str


@dataclass
class Case:
    category: str
    label: str
    cli: list[str] | None = None  # argv for nemotron main(), or
    call: Callable[[], object] | None = None  # a library call
    env: dict[str, str | None] = field(default_factory=dict)  # extra environment for this case (None: unset)
    app: object | None = None  # a Typer app for main(cli=...) instead of nemotron's (the job test recipe)
    expect: str = "error"  # "error" | "ok" | "either": what passes (see the module docstring)
    check: Callable[[Run], str | None] | None = None  # after the run, in the case's environment: a problem or None
    marker: Path | None = None  # what an injection would create (default: <case folder>/INJECTED)
    secrets: list[str] = field(default_factory=list)  # more values that must not appear anywhere
    scan: list[Path] = field(default_factory=list)  # more files/folders to search for the secrets
    state: Path | None = None  # the case's own state folder (default: the fuzzer's)
    watch: list[Path] | None = None  # dry-run: trees that must not change (default: see Fuzzer.watched)


@dataclass
class Outcome:
    kind: str  # "error" | "ok" | "traceback" | "accepted" | "failed"
    detail: str
    out: str = ""
    err: str = ""
    dry_changes: list[str] = field(default_factory=list)


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    per_category: Counter = field(default_factory=Counter)
    by_kind: Counter = field(default_factory=Counter)  # (category, outcome kind) -> cases
    seconds: Counter = field(default_factory=Counter)  # category -> seconds spent (run + check)
    slowest: dict = field(default_factory=dict)  # category -> (seconds, label) of its slowest case
    partial: list[str] = field(default_factory=list)  # labels of cases that changed the registry
    markers: list[str] = field(default_factory=list)  # cases whose marker file appeared
    secret_hits: list[str] = field(default_factory=list)  # cases where a secret value was found, and where
    dry_changes: list[str] = field(default_factory=list)  # dry-run cases that changed a watched tree
    bad: list[str] = field(default_factory=list)  # "category label: kind: detail" of tracebacks/accepted/failed

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failures(self) -> list[str]:
        return self.bad + self.partial + self.markers + self.secret_hits + self.dry_changes

    def line(self) -> str:
        failed = f", {self.outcomes['failed']} failed checks" if self.outcomes["failed"] else ""
        return (f"{self.total} inputs, {self.outcomes['traceback']} tracebacks, {len(self.partial)} partial artifacts, "
                f"{self.outcomes['accepted']} accepted, {len(self.markers)} marker files, "
                f"{len(self.secret_hits)} secret hits, {len(self.dry_changes)} dry-run changes{failed}")


# ---------------------------------------------------------------------------------------- judging
def _one_line_error(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > len("error: ")


@contextlib.contextmanager
def _environ(extra: dict[str, str | None]):
    """The case's environment; afterwards the whole environment as it was (main() pins tool homes in it)."""
    saved = dict(os.environ)
    for k, v in extra.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _verdict(case: Case, rc: int, out: str, err: str) -> Outcome:
    """error / ok / traceback / accepted / failed from the exit code and the output (before the check)."""
    text = out + err
    if "Traceback" in text:
        return Outcome("traceback", text[-500:])
    if INTERNAL_ERROR in err:
        return Outcome("traceback", err.strip()[-500:])
    if rc == 0:
        if case.expect == "error":
            return Outcome("accepted", out[-200:])
        return Outcome("ok", out.strip()[-200:])
    if case.cli is not None and not _one_line_error(err):
        return Outcome("traceback", f"rc={rc}, stderr not one 'error:' line: {err[-500:]!r}")
    if case.expect == "ok":
        return Outcome("failed", f"refused a legal input: {err.strip()[-300:]}")
    return Outcome("error", err.strip())


def _call(case: Case) -> Outcome:
    """Run the case's CLI line or library call; the raw verdict."""
    from nemotron_cli.app import main
    from nemotron_core.errors import NemotronError

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if case.cli is not None:
                rc = main(list(case.cli), cli=case.app) if case.app is not None else main(list(case.cli))
            else:
                case.call()
                rc = 0
        except NemotronError as e:
            if case.cli is not None:  # main() must have caught it
                return Outcome("traceback", f"NemotronError escaped main(): {e}")
            msg = str(e)
            if not msg or "\n" in msg:
                return Outcome("traceback", f"multi-line: {msg!r}")
            return Outcome("failed", f"refused a legal input: {msg}") if case.expect == "ok" else Outcome("error", msg)
        except BaseException as e:  # noqa: BLE001 - anything else is what a user would see as a traceback
            return Outcome("traceback", f"{type(e).__name__}: {str(e)[:300]}")
    outcome = _verdict(case, rc if isinstance(rc, int) else 1, out.getvalue(), err.getvalue())
    outcome.out, outcome.err = out.getvalue(), err.getvalue()
    return outcome


def is_dry_run(case: Case) -> bool:
    """A command line that asks for a dry run (`--dry-run` before any `--`)."""
    if case.cli is None:
        return False
    words = case.cli[:case.cli.index("--")] if "--" in case.cli else case.cli
    return "--dry-run" in words


def _fresh_process() -> None:
    """Forget what one CLI call memoizes for the rest of its process (each case stands for a new
    `nemotron` process, with its own env.toml and state folder): the prepared stage jobs."""
    import sys

    prepared = getattr(sys.modules.get("pipeline.run"), "_PREPARED", None)
    if isinstance(prepared, dict):
        prepared.clear()


def run_case(case: Case, watch: list[Path] | None = None) -> Outcome:
    """Run one case in its environment: the verdict, the check, and the changes in `watch` around the call."""
    from tests.reliability.test_dry_run import changes, snapshot

    _fresh_process()
    with _environ(case.env):
        before = snapshot(watch) if watch else {}
        outcome = _call(case)
        if watch:
            outcome.dry_changes = changes(before, snapshot(watch))
        if case.check is not None and outcome.kind in ("error", "ok"):
            try:
                problem = case.check(Run(0 if outcome.kind == "ok" else 2, outcome.out, outcome.err, outcome.kind))
            except Exception as e:  # noqa: BLE001 - a failed assertion of a reused test helper is a finding
                problem = f"{type(e).__name__}: {str(e)[:400]}"
            if problem:
                outcome = Outcome("failed", problem, outcome.out, outcome.err, outcome.dry_changes)
    return outcome


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


def written(root: Path) -> dict[str, tuple[int, int, int]]:
    """{path: (inode, size, mtime_ns)} of every regular file under root (links not followed)."""
    out = {}
    if root.exists():
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if os.path.isfile(p) and not os.path.islink(p):
                    out[p] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def secret_hits(values: list[str], texts: dict[str, str], files: list[str]) -> list[str]:
    """Where any of `values` appears: the named texts, or the given files (never `secrets.env`)."""
    found = [f"{where}" for where, text in texts.items() for v in values if v and v in text]
    for path in files:
        if os.path.basename(path) == "secrets.env":
            continue
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            continue
        found += [path for v in values if v and v.encode() in data]
    return found


# ---------------------------------------------------------------------------------------- generating
class Fuzzer(HostileCases):
    """Builds cases in `work` (scratch files) against a registry at `state`/artifacts.

    pretrain_data / sft_data: real tiny data-prep outputs (read-only here: corruptions go to copies).
    `work`/_fixed holds what the cases share: stub srun/sbatch/scontrol, the dry-run world's
    sources and env.toml, and the HOME / XDG_RUNTIME_DIR every case runs with.
    """

    def __init__(self, work: Path, state: Path, pretrain_data: Path, sft_data: Path, seed: int = 0):
        self.work, self.state = work, state
        self.pretrain_data, self.sft_data = Path(pretrain_data), Path(sft_data)
        self.rng = random.Random(seed)
        self.n = 0
        self.registry_root = state / "artifacts"
        self.fixed = work / "_fixed"
        self.home, self.xdg = self.fixed / "home", self.fixed / "xdg"
        self.secret = ""  # the current case's random HF_TOKEN value
        self.env = {"NEMOTRON_STATE_DIR": str(state), "NEMOTRON_ENV_FILE": "", "HOME": str(self.home),
                    "XDG_RUNTIME_DIR": str(self.xdg), "NEMOTRON_DEBUG": None}
        self.generators: dict[str, Callable[[Path], Case]] = {
            "runspec": self.runspec, "env_toml": self.env_toml, "dotlist": self.dotlist,
            "train_config": self.train_config, "pretrain_data": self.pretrain_files, "sft_data": self.sft_files,
            "user_data": self.user_data, "data_import": self.data_import, "artifact_ref": self.artifact_ref,
            **self.hostile_generators(),
        }

    # -- set-up and the run loop
    def prepare(self) -> None:
        """Register the real pretrain data once, so refs to ARTIFACT resolve (the registry the CLI uses),
        and set up what the hostile categories share (stubs, the dry-run world)."""
        from nemotron_cli.import_cmd import import_source

        self.work.mkdir(parents=True, exist_ok=True)
        for folder in (self.home, self.xdg):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _environ(self.env), contextlib.redirect_stdout(io.StringIO()):
            from nemotron_core.artifacts import open_registry

            if ARTIFACT not in open_registry({"root": str(self.registry_root)}).names():
                import_source("data", "pretrain", str(self.pretrain_data), root=str(self.registry_root))
            self.prepare_hostile()

    def watched(self, case: Case) -> list[Path]:
        """What a dry run must leave as it was: the state folder (artifact root inside), the sources, HOME, XDG."""
        return case.watch or [case.state or self.state, self.fixed, self.pretrain_data, self.sft_data]

    def cases(self, count: int):
        names = list(self.generators)
        for i in range(count):
            category = names[i % len(names)]
            self.n += 1
            folder = self.work / f"{self.n:05d}-{category}"
            folder.mkdir(parents=True)
            self.secret = f"fzsecret{random_secrets.token_hex(12)}"  # not from the seeded RNG: never guessable
            case = self.generators[category](folder)
            case.env = {**self.env, "HF_TOKEN": self.secret, **case.env}
            case.secrets = [self.secret, *case.secrets]
            case.marker = case.marker or folder / "INJECTED"
            yield case

    def run(self, count: int, on_case: Callable[[Case, Outcome], None] | None = None) -> Tally:
        self.prepare()
        tally = Tally()
        for case in self.cases(count):
            label = f"{case.category} {case.label}"
            state = case.state or self.state
            before, files_before = tree(self.registry_root), written(state)
            start = time.perf_counter()
            outcome = run_case(case, self.watched(case) if case.watch or is_dry_run(case) else None)
            took = time.perf_counter() - start
            after = tree(self.registry_root)
            tally.outcomes[outcome.kind] += 1
            tally.per_category[case.category] += 1
            tally.by_kind[case.category, outcome.kind] += 1
            tally.seconds[case.category] += took
            if took > tally.slowest.get(case.category, (0.0, ""))[0]:
                tally.slowest[case.category] = (took, case.label)
            if after != before:
                changed = sorted(set(after) ^ set(before) | {k for k in after if k in before and after[k] != before[k]})
                tally.partial.append(f"{label}: {changed[:5]}")
            if outcome.kind in FAILURE_KINDS:
                tally.bad.append(f"{label}: {outcome.kind}: {outcome.detail}")
            if case.marker and os.path.lexists(case.marker):
                tally.markers.append(f"{label}: {case.marker.name} appeared")
            new_files = [p for p, st in written(state).items() if files_before.get(p) != st]
            extra = [str(p) for root in case.scan for p in ([root] if root.is_file() else written(root))]
            hits = secret_hits(case.secrets, {"stdout": outcome.out, "stderr": outcome.err}, new_files + extra)
            if hits:
                tally.secret_hits.append(f"{label}: {sorted(set(hits))[:5]}")
            if outcome.dry_changes:
                tally.dry_changes.append(f"{label}: {outcome.dry_changes[:5]}")
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
