"""The hostile-input categories of issue 18, as generators for tests/reliability/fuzzing.py's Fuzzer.

A mixin: the Fuzzer brings the RNG (`self.rng`, `pick`, `word`), the folders (`work`, `state`,
`registry_root`, `fixed`) and the current case's random secret (`self.secret`, set as HF_TOKEN
for every case). Each generator builds its inputs in the case folder and returns a Case that
says what passes (`expect`) and how to check the result beyond the exit code (`check`).

The tables and helpers of the targeted tests are reused, not copied: hostile values, stubs and
intact-value checks from test_script_injection, the record edits from test_registry_records,
the bombs from test_yaml_bounds, the command tree and tree hashing from test_dry_run.

    shell_injection  a metacharacter value (`; touch M`, `$(touch M)`, backticks, quotes, `#`, `${HOME}`,
                     spaces) in one profile field, an sbatch option, the container image, a mount or a
                     passthrough word, rendered by `--dry-run` (then the printed script runs with stub
                     srun/scontrol) or submitted by `--batch` (stub sbatch runs the script): passes when
                     the job ran, `bash -n` accepts the script and the value arrived intact. Control
                     characters, bad env names (Slurm and local profiles) and a comma in a mount must be
                     refused in one line naming the key. A state folder with shell characters must work.
    secrets          a secret (declared in `secrets`, named like one, or the [wandb] api_key_env target)
                     read by a config in every form (`${oc.env:V}`, `oc.decode`, embedded, default, in a
                     list or dict, through another key), on a dry run or submitted (stub sbatch; startup
                     lines using "$HF_TOKEN"); secret-named keys holding literals of any type; a plain key
                     equal to a secret; a secret used as an artifact, alias, profile, root or source name.
                     Passes with no secret hit (and a refusal where a literal is written).
    registry_records crafted fields in a version record (digest recomputed), symlinked registry parts,
                     corrupt records and alias files, against show/list/lineage/verify/gc on a registry
                     of the case's own, with a victim folder outside the root that must survive.
    import_symlinks  links to a private file outside the source, links up, back inside, dangling, loops,
                     fifos, odd names; the source itself `/`, a loop, holding --root, or --move from the
                     registry: nothing published on a refusal, no secret byte in the registry.
    yaml_bombs       alias and merge bombs, deep flow/block nesting, recursive aliases, files over 8 MiB
                     (via -c FILE and +key=VALUE), interpolation chains, cycles and string doubling.
    env_toml_types   wrong types, typos (random edits of the schema's keys, in a profile, a parent or a
                     section), control characters in values, keys and table names, bad env names: one
                     line naming the key.
    dry_run          a random leaf of the command tree with (valid or junk) arguments, flags and a profile,
                     `--dry-run` anywhere (or twice; or mangled: `--dry-run=1`, `--dry`, after `--`).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Callable

import typer  # at module level: the job CLI's annotations are evaluated in this module's globals

#: The variable `[wandb] api_key_env` names in the secrets cases' env.toml.
WANDB_VAR = "MY_WB"  # not named like a secret: only the [wandb] api_key_env declaration makes it one


def job_app():
    """A one-command CLI around the job test recipe, wired like nano3's (test_script_injection's fixture,
    test_seed_stage and the fuzzer's shell-injection cases run it)."""
    from nemotron_cli.recipe_typer import RecipeTyper
    from pipeline.stages import Stage
    from tests.execution.conftest import JOB_RECIPE

    meta = Stage("test/job", JOB_RECIPE)
    app = RecipeTyper(name="t")

    @app.recipe(meta, name="job", panel="Test", help="The execution test job.")
    def job(ctx: typer.Context) -> None:
        from nemotron_cli.context import split_dotlist
        from nemotron_cli.recipe_run import run_recipe

        raise typer.Exit(run_recipe(meta, ctx.obj, split_dotlist(ctx.args)))

    @app.command("noop")
    def noop() -> None:
        pass

    return app


class HostileCases:
    """The generators; mixed into tests/reliability/fuzzing.py's Fuzzer."""

    # -- set-up
    def hostile_generators(self) -> dict[str, Callable]:
        return {"shell_injection": self.shell_injection, "secrets": self.secrets,
                "registry_records": self.registry_records, "import_symlinks": self.import_symlinks,
                "yaml_bombs": self.yaml_bombs, "env_toml_types": self.env_toml_types, "dry_run": self.dry_run}

    def prepare_hostile(self) -> None:
        """Stubs first on PATH for Slurm, the job test recipe's CLI, and a dry-run world: sources of every
        layout and every data/model artifact published in the shared registry (sft-model twice: v1
        unaliased, what gc would delete; v2 aliased `best`)."""
        from nemotron_core.artifacts import open_registry
        from nemotron_cli.import_cmd import import_source
        from tests.reliability import test_dry_run as dr
        from tests.reliability import test_script_injection as si

        self.stub_bin = self.fixed / "stub-bin"
        self.stub_bin.mkdir(parents=True, exist_ok=True)
        for name, text in {"sbatch": si.SBATCH_STUB, "srun": si.SRUN_STUB.format(python=sys.executable),
                           "scontrol": si.SCONTROL_STUB}.items():
            (self.stub_bin / name).write_text(text)
            (self.stub_bin / name).chmod(0o755)
        self.job_app = job_app()
        self.world_env = self.fixed / "env.toml"
        self.world_env.write_text(dr.ENV_TOML.format(root=self.registry_root))
        sources = self.fixed / "sources"
        if not sources.exists():
            dr._sources(sources)
        self.world = dr.World(self.fixed, self.state, self.registry_root,
                              {p.name: p for p in sources.iterdir()}, {})
        reg = open_registry({"root": str(self.registry_root)})
        if "nano3-sft-model" not in reg.names():
            for stage in ("sft", "rl"):
                import_source("data", stage, str(self.world.source("data", stage)), root=str(self.registry_root))
            for stage in ("pretrain", "sft", "rl", "sft"):
                import_source("model", stage, str(self.world.source("model", stage)), root=str(self.registry_root))
            reg.set_alias("nano3-sft-model:v2", "best")
        self.leaves = dr.leaves()

    def _slurm_env(self, folder: Path, state: Path) -> dict[str, str | None]:
        """The environment of a case that renders or submits a Slurm job through the stubs."""
        stub_out = folder / "stub-out"
        stub_out.mkdir(exist_ok=True)
        return {"NEMOTRON_ENV_FILE": str(folder / "env.toml"), "NEMOTRON_STATE_DIR": str(state),
                "PATH": f"{self.stub_bin}:{os.environ['PATH']}", "STUB_OUT": str(stub_out), "SLURM_CONF": None,
                "COLUMNS": "400"}

    # -- shell metacharacters per profile field
    def shell_injection(self, folder: Path):
        from tests.reliability import test_script_injection as si
        from tests.reliability.fuzzing import Case

        marker, state = folder / "INJECTED", folder / "state"
        env = self._slurm_env(folder, state)
        stub_out = Path(env["STUB_OUT"])
        scan = [stub_out / "sbatch.env", stub_out / "job.out"]
        what = self.pick(["field"] * 6 + ["control"] * 2 + ["env_name"] * 2 + ["mount_comma", "state_folder"])
        batch = self.rng.random() < 0.5
        words: list[str] = []

        def argv(*extra: str) -> list[str]:
            mode = ["--batch", "p"] if batch else ["--run", "p", "--dry-run"]
            line = ["job", *mode, "sleep=0", *extra]
            if self.rng.random() < 0.3:
                line = [*mode, "job", "sleep=0", *extra]  # global options before the command
            return line

        if what == "state_folder":
            m = shlex.quote(str(marker))
            state = folder / self.pick([f"state $(touch {m}) 'x' dir", "x/nemo_run/state", "two words/state",
                                        f"semi;touch {m};x", f"tick`touch {m}`x"])
            env = {**env, "NEMOTRON_STATE_DIR": str(state)}
            (folder / "env.toml").write_text(si.profile_text(env={"FOO": "a b"}))
            batch = True

            def ran(run) -> str | None:
                rc = (stub_out / "job.rc").read_text().strip()
                out = (stub_out / "job.out").read_text()
                return None if rc == "0" and "task 0 of" in out else f"job rc {rc}: {out[-300:]!r}"
            return Case("shell_injection", f"state folder {state.relative_to(folder)!r}", cli=argv(),
                        app=self.job_app, env=env, expect="ok", check=ran, marker=marker, scan=scan, state=state)

        if what == "field":
            kind = self.pick([k for k in si.KINDS if k not in si.REFUSED])
            field = self.pick(["env", *si.SBATCH_FIELDS, "container_image", "mounts", "passthrough",
                               "additional_parameters"])
        else:
            kind, field = "control", self.pick(["env", *si.SBATCH_FIELDS, "container_image", "mounts", "passthrough"])
        value = si.marker_value(kind, marker) if what == "field" else self.pick(
            [f"x\ntouch {shlex.quote(str(marker))}", "x\ttab", "\x1b[31mred", "a\rb", "x\x7fy"])
        keys: dict = {}
        envs: dict[str, str] = {}
        extra_toml = ""
        if what == "env_name":
            name = self.pick(["A=1;touch {m};B", "$(touch {m})", "1ABC", "A B", "A-B", "A\nB", "", "`touch {m}`"])
            name = name.format(m=shlex.quote(str(marker)))
            if self.rng.random() < 0.5:
                text = f'[p]\nexecutor = "local"\n[p.env]\n{si.toml_str(name)} = "v"\n'
                batch = False  # a local --batch that got through would start a job in the background
            else:
                text = si.profile_text(env={name: "v"})
            (folder / "env.toml").write_text(text)
            return Case("shell_injection", f"env name {name!r}", cli=argv(), app=self.job_app, env=env,
                        check=lambda run: None if "env" in run.err else f"error does not name env: {run.err!r}",
                        marker=marker, scan=scan, state=state)
        if what == "mount_comma":
            keys = {"container_image": "img:1", "mounts": [f"/a,{self.word()}:/c"]}
            (folder / "env.toml").write_text(si.profile_text(**keys))
            return Case("shell_injection", f"mount with a comma {keys['mounts']}", cli=argv(), app=self.job_app,
                        env=env, check=lambda run: None if "mounts" in run.err else f"not naming mounts: {run.err!r}",
                        marker=marker, scan=scan, state=state)
        if field == "env":
            envs = {"HOSTILE": value}
        elif field == "mounts":
            value = "/host " + value.replace(",", "") + ":/in container"
            keys = {"container_image": "img:1", "mounts": [value]}
        elif field == "container_image":
            keys = {"container_image": value}
        elif field == "passthrough":
            words = ["--", "--x", value]
        elif field == "additional_parameters":
            extra_toml = f"additional_parameters = {{comment = {si.toml_str(value)}}}\n"
        else:
            keys = {field: value}
        text = si.profile_text(**keys)
        text = text + extra_toml + ("[p.env]\n" + "".join(f"{si.toml_str(k)} = {si.toml_str(v)}\n"
                                                           for k, v in envs.items()) if envs else "")
        (folder / "env.toml").write_text(text)
        label = f"{'batch' if batch else 'dry-run'} {field}={value!r}"
        if what == "control":
            key = {"env": "HOSTILE", "passthrough": "command argument"}.get(field, field)
            return Case("shell_injection", label, cli=argv(*words), app=self.job_app, env=env,
                        check=lambda run: None if key in run.err else f"error does not name {key}: {run.err!r}",
                        marker=marker, scan=scan, state=state)

        def intact(script: str) -> str | None:
            si.bash_n(script)
            if field == "additional_parameters":
                got = si.sbatch_value(script, "comment")
                return None if got == value else f"#SBATCH --comment={got!r}, not {value!r}"
            si.check_intact(field, value, script, si.srun_record(stub_out), words)
            return None

        def dry_run_script(run) -> str | None:
            script = run.out[run.out.index("#!/bin/bash"):]
            si.run_script(script, stub_out, folder)
            return intact(script)

        def submitted(run) -> str | None:
            (written,) = (state / "jobs" / "test-job").glob("*/sbatch.sh")
            problem = intact(written.read_text())
            if problem or field in ("container_image", "mounts"):  # no container here: srun only records
                return problem
            rc = (stub_out / "job.rc").read_text().strip()
            return None if rc == "0" else f"job rc {rc}: {(stub_out / 'job.out').read_text()[-300:]!r}"

        return Case("shell_injection", label, cli=argv(*words), app=self.job_app, env=env, expect="ok",
                    check=submitted if batch else dry_run_script, marker=marker, scan=scan, state=state)

    # -- secrets: sources x forms, literals, echoes
    def _secret_forms(self, var: str, key: str) -> tuple[str, str]:
        """(label, override) reading $var into config key `key`."""
        form = self.pick(["env", "decode", "embedded", "default", "list", "dict"])
        ref = f"${{oc.env:{var}}}"
        value = {"env": ref, "decode": f"${{oc.decode:{ref}}}", "embedded": f"postgres://u:{ref}@db:5432/x",
                 "default": f"${{oc.env:{var},fallback}}", "list": f"[x, '{ref}']", "dict": f"{{a: [x, '{ref}']}}"}[form]
        return form, f"+{key}={value}"

    def secrets(self, folder: Path):
        from nemotron_core.secrets import is_secret_key
        from tests.reliability import test_script_injection as si
        from tests.reliability.conftest import REPO
        from tests.reliability.fuzzing import Case

        db, wb = f"db{self.secret[8:]}x", f"wb{self.secret[8:]}y"  # declared-only values (DB_PASS, MY_WB)
        env_vars = {"DB_PASS": db, WANDB_VAR: wb}
        values = {"DB_PASS": db, "HF_TOKEN": self.secret, WANDB_VAR: wb}
        what = self.pick(["read_dry", "read_dry", "read_batch", "read_batch", "literal", "literal", "plain_equal",
                          "echo", "echo"])
        state = folder / "state"
        env = {**self._slurm_env(folder, state), **env_vars}
        stub_out = Path(env["STUB_OUT"])
        scan = [stub_out / "sbatch.env", stub_out / "job.out", folder / "dry-run.sh"]
        startup = self.rng.random() < 0.5
        profile = si.profile_text(secrets=["DB_PASS"], container_image=self.pick(["", "img:1"]),
                                  **({"startup_commands": [': "$HF_TOKEN" "$DB_PASS" "$MY_WB"']} if startup else {}))
        profile += f'[wandb]\napi_key_env = "{WANDB_VAR}"\n'
        (folder / "env.toml").write_text(profile)
        pretrain = ["nano3", "pretrain", "-c", "tiny", "--run", "p", "--dry-run", "data_path=/tmp"]
        job = ["job", "--batch", "p", "sleep=0"]
        key = self.pick(["train.note", f"train.{self.word()}", "train.api_key", "train.db.password", "train.hf_token"])
        var = self.pick(list(values))
        common = dict(env=env, secrets=list(values.values()), scan=scan, state=state)

        if what in ("read_dry", "read_batch"):
            expect = "ok"
            if self.rng.random() < 0.2:  # through another key, from a config file
                config = folder / "mine.yaml"
                base = (REPO / "recipes/nano3/stage0_pretrain/config/tiny.yaml").read_text() if what == "read_dry" \
                    else "sleep: 0\n"
                config.write_text(base + f"\nholder:\n  v: ${{oc.env:{var}}}\nplain_copy: ${{holder.v}}\n")
                form, words = "other key", ["-c", str(config)]
            else:
                form, override = self._secret_forms(var, key)
                words = [override]
                if form in ("list", "dict") and is_secret_key(key.rsplit(".", 1)[1]):
                    expect = "error"  # the literal 'x' beside the reference, under a secret-named key
            if what == "read_dry":
                argv = [*pretrain, *words] if words[0] != "-c" else \
                    ["nano3", "pretrain", *words, "--run", "p", "--dry-run", "data_path=/tmp"]
                return Case("secrets", f"dry run reads ${var} ({form}) {words[-1]!r}", cli=argv, expect=expect,
                            **common)
            return Case("secrets", f"batch reads ${var} ({form}) {words[-1]!r}{' +startup' if startup else ''}",
                        cli=[*job, *words] if words[0] != "-c" else ["job", *words, "--batch", "p"],
                        app=self.job_app, expect=expect, **common)

        if what == "literal":
            tag = self.secret[8:20]
            literal, shown = self.pick([
                (f"{self.rng.randint(10 ** 10, 10 ** 11)}", None), (f"{self.rng.randint(2, 9)}.5e1{self.rng.randint(0, 9)}", None),
                (f"[s3cr3t-{tag}, s3cr3t-{tag}b]", f"s3cr3t-{tag}"), (f"{{user: me, pw: s3cr3t-{tag}}}", f"s3cr3t-{tag}"),
                (f"s3cr3t-{tag}", None)])
            key = self.pick(["train.api_key", "train.password", "train.db.password", "train.hf_token",
                             "train.credentials", "train.secret"])
            via_job = self.rng.random() < 0.5
            argv = [*job, f"+{key}={literal}"] if via_job else [*pretrain, f"+{key}={literal}"]
            return Case("secrets", f"literal {key}={literal!r}", cli=argv, app=self.job_app if via_job else None,
                        check=lambda run: None if f"'{key}" in run.err else f"error does not name {key}: {run.err!r}",
                        **{**common, "secrets": [*common["secrets"], shown or literal]})

        if what == "plain_equal":
            var = self.pick(["DB_PASS", "HF_TOKEN", WANDB_VAR])
            via_job = self.rng.random() < 0.5
            item = f"+{key.replace('api_key', 'note').replace('password', 'pw').replace('hf_token', 'hf')}={values[var]}"
            argv = [*job, item] if via_job else [*pretrain, item]
            return Case("secrets", f"plain key = ${var}'s value", cli=argv, app=self.job_app if via_job else None,
                        **common)

        # a secret pasted where a name belongs: refused or honoured, never echoed
        s = values[self.pick(["DB_PASS", "HF_TOKEN"])]
        root = ["--root", str(self.registry_root)]
        argv = self.pick([
            ["artifacts", "show", s, *root], ["artifacts", "show", f"nano3-sft-model:{s}", *root],
            ["artifacts", "lineage", f"{s}:v1", *root], ["artifacts", "alias", "nano3-sft-model:v2", s, "--dry-run", *root],
            ["artifacts", "alias", f"{s}:v1", "best", "--dry-run", *root],
            ["nano3", "sft", "--run", s, "--dry-run"], ["nano3", "sft", "--dry-run", "-c", s],
            ["artifacts", "list", "--root", str(folder / s)], ["nano3", "data", "import", "rl", str(folder / s), *root],
            ["nano3", "data", "import", "rl", str(self.world.source("data", "rl")), "--alias", s, "--dry-run", *root],
            ["evaluate", f"nano3-sft-model:{s}", "--dry-run"], ["nano3", "sft", "--dry-run", f"data_path={s}"],
        ])
        shown = [w.replace(s, "<secret>") for w in argv]
        return Case("secrets", f"secret as a name: {' '.join(shown)}", cli=argv, expect="either",
                    **{**common, "env": {**env, "NEMOTRON_ENV_FILE": str(folder / "env.toml")}})

    # -- registry records
    def registry_records(self, folder: Path):
        from nemotron_core.artifacts import open_registry
        from tests.reliability import test_registry_records as rr
        from tests.reliability.fuzzing import Case, tree

        root = folder / "reg"
        victim = folder / "victim"
        victim.mkdir()
        (victim / "f").write_text("precious")
        target = os.path.relpath(victim, root.parent)
        secret_file = folder / "outside-secret"
        secret_file.write_text(f"-----BEGIN PRIVATE KEY-----{self.secret}\n")
        secret_file.chmod(0o600)
        with contextlib.redirect_stdout(io.StringIO()):
            reg = open_registry({"root": str(root)})
            for i in (1, 2):
                src = folder / f"src{i}"
                src.mkdir()
                (src / "train.parquet").write_bytes(b"PAR1 %d %s PAR1" % (i, self.word().encode()))
                reg.publish(rr.NAME, src)
            reg.set_alias(f"{rr.NAME}:v2", "best")
        name_dir = root / rr.NAME
        what = self.pick(["field", "field", "field", "link", "corrupt", "corrupt"])
        command = self.pick(["show", "gc", "verify", "list", "lineage", "gc-dry"])
        argv = {"show": ["artifacts", "show", f"{rr.NAME}:v1"], "gc": ["artifacts", "gc"],
                "verify": ["artifacts", "verify"], "list": ["artifacts", "list", "--json"],
                "lineage": ["artifacts", "lineage", f"{rr.NAME}:v1"], "gc-dry": ["artifacts", "gc", "--dry-run"]}[command]
        # What passes: a command that needs the bad record refuses it; `list` shows every version
        # (a bad one with its problem); `verify` fails on any problem; where a command does not
        # need the bad part (gc of a linked upload folder removes the link only), either is right.
        expect = "ok" if command == "list" else "error"
        if what == "field":
            extra = {
                "upload-empty": ("upload", lambda rec, out: rec.update(upload="")),
                "upload-int": ("upload", lambda rec, out: rec.update(upload=1)),
                "upload-newline": ("upload", lambda rec, out: rec.update(upload="a\nb")),
                "file-tab": ("files", lambda rec, out: rec["files"][0].update(path="a\tb")),
                "file-double-slash": ("files", lambda rec, out: rec["files"][0].update(path="a//b")),
                "file-dot": ("files", lambda rec, out: rec["files"][0].update(path="./a")),
                "file-twice": ("files", lambda rec, out: rec["files"].append(dict(rec["files"][0]))),
                "version-0": ("version", lambda rec, out: rec.update(version=0)),
                "version-true": ("version", lambda rec, out: rec.update(version=True)),
                "lineage-unpinned": ("lineage", lambda rec, out: rec.update(lineage=["nano3-sft-data"])),
                "created-x": ("created", lambda rec, out: rec.update(created="x")),
            }
            hostile = {**rr.HOSTILE, **extra}
            label = self.pick(list(hostile))
            _field, change = hostile[label]
            rr._edit(reg, 1, lambda rec: change(rec, target))
        elif what == "link":
            label = self.pick(["upload-link", "versions-link", "name-link", "file-link-secret"])
            if label == "upload-link":
                upload = reg.resolve(f"{rr.NAME}:v1").local_path.parent
                shutil.rmtree(upload)
                upload.symlink_to(victim, target_is_directory=True)
            elif label == "versions-link":
                (folder / "elsewhere").mkdir()
                moved = folder / "elsewhere" / "versions"
                (name_dir / "versions").rename(moved)
                (name_dir / "versions").symlink_to(moved, target_is_directory=True)
            elif label == "name-link":
                moved = folder / "elsewhere-name"
                name_dir.rename(moved)
                name_dir.symlink_to(moved, target_is_directory=True)
            else:
                files = reg.resolve(f"{rr.NAME}:v1").local_path
                (files / "train.parquet").unlink()
                (files / "train.parquet").symlink_to(secret_file)
            if command != "verify" and (label, command) not in {("versions-link", "gc"), ("upload-link", "show")}:
                expect = "either"
        else:
            label = self.pick(["truncated", "list", "null", "deep", "folder", "fifo", "alias-up", "alias-empty",
                               "alias-garbage"])
            record = name_dir / "versions" / "v2.json"
            alias = name_dir / "aliases" / "best.json"
            if label == "truncated":
                data = record.read_bytes()
                record.write_bytes(data[:self.rng.randrange(1, len(data) - 1)])
            elif label in ("list", "null", "deep"):
                record.write_text({"list": "[]", "null": "null", "deep": "[" * 5000 + "]" * 5000}[label])
            elif label in ("folder", "fifo"):
                record.unlink()
                record.mkdir() if label == "folder" else os.mkfifo(record)
            else:
                alias.write_text({"alias-up": '{"version": "../x"}', "alias-empty": "{}",
                                  "alias-garbage": self.junk()}[label], errors="surrogatepass")
            if command in ("gc", "gc-dry", "lineage", "show"):
                expect = "either"  # v1 is fine: these may work on it (naming v2's problem) or refuse
            if command == "show" and self.rng.random() < 0.5:  # the broken one by alias: never v1 instead
                argv, expect = ["artifacts", "show", f"{rr.NAME}:{'best' if label.startswith('alias') else 'latest'}"], "error"
        before = tree(root)

        def check(run) -> str | None:
            if not (victim / "f").is_file() or (victim / "f").read_text() != "precious":
                return "the victim outside the root was changed or deleted"
            if secret_file.read_text().find(self.secret) < 0:
                return "the secret file outside the root was changed"
            if run.kind == "error" and tree(root) != before:
                return "a refused command changed the registry"
            if command == "list" and run.kind == "ok" and what != "link":
                rows = {r["ref"]: r for r in json.loads(run.out)}
                bad = f"{rr.NAME}:v1" if what == "field" else f"{rr.NAME}:v2"
                if not {f"{rr.NAME}:v1", f"{rr.NAME}:v2"} <= set(rows):
                    return f"list hides a version: {sorted(rows)}"
                if not label.startswith("alias") and "problem" not in rows[bad]:
                    return f"list shows {bad} without its problem"
            return None

        return Case("registry_records", f"{what} {label} -> {' '.join(argv[1:])}",
                    cli=[*argv, "--root", str(root)], expect=expect, check=check, scan=[root])

    # -- import sources with links
    def import_symlinks(self, folder: Path):
        from nemotron_core.artifacts import open_registry
        from tests.reliability.fuzzing import Case
        from tests.reliability.test_import_sources import nothing_published, rl_source

        src = rl_source(folder / "src")
        root = folder / "reg"
        outside = folder / "outside"
        outside.mkdir()
        private = outside / "id_rsa"
        private.write_text(f"-----BEGIN PRIVATE KEY-----\n{self.secret}\n")
        private.chmod(0o600)
        sub = src / self.pick(["", "sub", "a/b"])
        sub.mkdir(parents=True, exist_ok=True)
        what = self.pick(["link-private", "link-private-rel", "dir-outside", "up", "dangling", "loop", "fifo",
                          "back-inside-abs", "inside-rel", "newline-name", "source-root", "source-loop",
                          "source-holds-root", "move-from-root", "source-is-link"])
        expect = "error"
        source, extra = str(src), []
        published: list[int] = []
        if what == "link-private":
            (sub / "id_rsa").symlink_to(private)
        elif what == "link-private-rel":
            (sub / "key.jsonl").symlink_to(os.path.relpath(private, sub))
        elif what == "dir-outside":
            (sub / "more").symlink_to(outside, target_is_directory=True)
        elif what == "up":
            (sub / "up").symlink_to("..", target_is_directory=True)
        elif what == "dangling":
            (sub / "gone.jsonl").symlink_to(sub / "not-there")
        elif what == "loop":
            (sub / "a").symlink_to(sub / "b")
            (sub / "b").symlink_to(sub / "a")
        elif what == "fifo":
            os.mkfifo(sub / "pipe.jsonl")
        elif what == "back-inside-abs":
            (sub / "alias.jsonl").symlink_to(src / "train.jsonl")
            expect = "ok"
        elif what == "inside-rel":
            (src / "alias.jsonl").symlink_to("train.jsonl")
            expect = "ok"
        elif what == "newline-name":
            (sub / f"x\n{self.word()}.jsonl").write_text("{}\n")
            expect = "either"
        elif what == "source-root":
            source = "/"
        elif what == "source-loop":
            (folder / "la").symlink_to(folder / "lb")
            (folder / "lb").symlink_to(folder / "la")
            source = str(folder / "la")
        elif what == "source-holds-root":
            root = src / self.pick(["registry", "sub/registry"])
        elif what == "source-is-link":
            (folder / "link-to-src").symlink_to(src, target_is_directory=True)
            source, expect = str(folder / "link-to-src"), "either"
        else:  # --move of a published version's own files
            with contextlib.redirect_stdout(io.StringIO()):
                reg = open_registry({"root": str(root)})
                v1 = reg.publish("nano3-rl-data", src)
            source, extra, published = str(v1.local_path), ["--move"], [1]
        if what != "move-from-root" and expect == "error" and self.rng.random() < 0.3:
            extra = ["--move"]  # a refused move leaves the source as it was
        source_files = sorted(p.name for p in src.rglob("*")) if src.exists() else []

        def check(run) -> str | None:
            if private.read_text().find(self.secret) < 0 or (private.stat().st_mode & 0o777) != 0o600:
                return "the private file outside the source was changed"
            links = [str(p) for p in root.rglob("*") if p.is_symlink()] if root.exists() else []
            if links:
                return f"links in the registry: {links[:3]}"
            if run.kind == "error":
                if what == "move-from-root":
                    live = open_registry({"root": str(root)}).live_versions("nano3-rl-data")
                    return None if live == published else f"live versions {live} after a refused --move"
                if not nothing_published(root):
                    return "a refused import left a version or a staging area"
                if sorted(p.name for p in src.rglob("*")) != source_files:
                    return "a refused import changed the source"
            return None

        return Case("import_symlinks", f"{what} {' '.join(extra)}".strip(),
                    cli=["nano3", "data", "import", "rl", source, *extra, "--root", str(root)],
                    expect=expect, check=check, scan=[root])

    # -- YAML and interpolation bombs
    def yaml_bombs(self, folder: Path):
        from nemotron_core.config.bounds import MAX_CHARS, MAX_DEPTH
        from nemotron_core.config.yaml_bounded import MAX_ALIAS_NODES, MAX_YAML_BYTES, MAX_YAML_DEPTH
        from tests.reliability import test_yaml_bounds as yb
        from tests.reliability.fuzzing import Case

        what = self.pick(["laughs", "merge", "deep_flow", "deep_maps", "deep_block", "recursive", "chain", "cycle",
                          "doubling", "laughs", "deep_flow", "chain"] + (["big_file"] if self.rng.random() < 0.2 else []))
        fan = self.rng.randint(3, 10)
        # the last level alone repeats fan**(levels-1) copies of a 2-node list: from just past the
        # alias budget to far past the document budget
        levels = math.ceil(math.log(MAX_ALIAS_NODES * 0.75) / math.log(fan)) + 1 + self.rng.randint(0, 3)
        depth = self.rng.randint(MAX_YAML_DEPTH + 1, 5000)
        if what == "laughs":
            text = yb.laughs(levels, fan)
        elif what == "merge":
            text = yb.merges(levels, fan)
        elif what == "deep_flow":
            text = "x: " + "[" * depth + "]" * depth + "\n"
        elif what == "deep_maps":
            text = "x: " + "{a: " * depth + "1" + "}" * depth + "\n"
        elif what == "deep_block":
            text = "x:\n" + "".join("  " * (i + 1) + "- \n" for i in range(min(depth, 400)))
        elif what == "recursive":
            text = self.pick(["x: &x [1, *x]\n", "x: &x {a: *x}\n", "x: &x [[[*x]]]\n"])
        elif what == "chain":
            n = self.rng.randint(MAX_DEPTH + 1, 5000)
            text = "chain:\n" + "".join(f"  k{i}: ${{chain.k{i + 1}}}\n" for i in range(n)) + f"  k{n}: 1\n"
        elif what == "cycle":
            n = self.rng.randint(1, 6)
            names = [f"c{i}_{self.word(2, 4)}" for i in range(n)]
            text = "".join(f"{a}: ${{{b}}}\n" for a, b in zip(names, names[1:] + names[:1]))
        elif what == "doubling":
            ways = self.rng.randint(6, 9)
            steps = math.ceil(math.log(MAX_CHARS / 64) / math.log(ways)) + self.rng.randint(0, 1)
            text = "bomb:\n  l0: " + "x" * 64 + "\n" + "".join(
                f"  l{i}: '" + "".join(f"${{bomb.l{i - 1}}}" for _ in range(ways)) + "'\n" for i in range(1, steps + 1))
        else:
            text = "pad: '" + "x" * (MAX_YAML_BYTES + self.rng.randint(1, 4096)) + "'\n"
        flow = {"laughs": lambda: "{" + ", ".join(text.splitlines()) + "}",
                "deep_flow": lambda: text.split(":", 1)[1].strip(), "deep_maps": lambda: text.split(":", 1)[1].strip(),
                "recursive": lambda: text.split(":", 1)[1].strip()}
        base = ["nano3", "pretrain", "--dry-run", "data_path=/tmp"]
        if what in flow and self.rng.random() < 0.5:
            return Case("yaml_bombs", f"+bomb= {what}", cli=[*base, "-c", "tiny", f"+bomb={flow[what]()}"])
        path = folder / f"{what}.yaml"
        path.write_text(yb.TINY + text)
        return Case("yaml_bombs", f"-c {what} ({len(text):,} chars)", cli=[*base, "-c", str(path)],
                    check=lambda run: None if str(path) in run.err or what in ("chain", "cycle", "doubling")
                    else f"error does not name the file: {run.err!r}")

    # -- env.toml: wrong types, typos, control characters
    _WRONG_TYPES = [
        ("mounts", '"/a:/b"'), ("mounts", "[1, 2]"), ("env", '"FOO=1"'), ("additional_parameters", '"x"'),
        ("nodes", '"2"'), ("nodes", "-1"), ("nodes", "1.5"), ("exclusive", '"yes"'), ("startup_commands", '"x"'),
        ("secrets", '"HF_TOKEN"'), ("wandb", '"x"'), ("gpus_per_node", "true"), ("time", "[1]"),
        ("container_image", "3"), ("retries", "-3"), ("tunnel", '"sssh"'), ("network", '"bridge"'),
        ("port", '"22"'), ("code_excludes", '"x"'), ("env", "{A = [1]}"), ("additional_parameters", "{a = [1]}"),
        ("extends", "3"), ("connect_timeout", "0"), ("ulimits", "{a = 1}"), ("mem", "true"),
    ]

    def _typo(self, key: str, known: set[str]) -> str:
        for _ in range(20):
            i = self.rng.randrange(len(key))
            how = self.pick(["drop", "swap", "double", "replace"])
            if how == "drop":
                typo = key[:i] + key[i + 1:]
            elif how == "swap" and i + 1 < len(key):
                typo = key[:i] + key[i + 1] + key[i] + key[i + 2:]
            elif how == "double":
                typo = key[:i] + key[i] + key[i:]
            else:
                typo = key[:i] + self.pick("abcdefghijklmnopqrstuvwxyz") + key[i + 1:]
            if typo and typo not in known and typo.replace("_", "").isalnum():
                return typo
        return key + "x"

    def env_toml_types(self, folder: Path):
        from nemotron_core.profile_schema import CacheTable, ProfileTable, WandbTable
        from tests.reliability.fuzzing import Case

        base = self.pick(['executor = "slurm"\naccount = "acct"\n', 'executor = "local"\n'])
        what = self.pick(["wrong_type", "wrong_type", "typo", "typo", "parent_typo", "section_typo", "control_value",
                          "control_key", "control_table", "env_name"])
        profile_keys = set(ProfileTable.model_fields)
        if what == "wrong_type":
            key, value = self.pick(self._WRONG_TYPES)
            text, needle = f"[p]\n{base}{key} = {value}\n", key
        elif what == "typo":
            key = self.pick(sorted(profile_keys - {"executor", "extends"}))
            typo = self._typo(key, profile_keys)
            text, needle = f"[p]\n{base}{typo} = 1\n", f"unknown key '{typo}'"
        elif what == "parent_typo":
            key = self.pick(sorted(profile_keys - {"executor", "extends"}))
            typo = self._typo(key, profile_keys)
            text, needle = f'[p]\nextends = "base"\n[base]\n{base}{typo} = 1\n', f"[base] unknown key '{typo}'"
        elif what == "section_typo":
            section, model = self.pick([("wandb", WandbTable), ("cache", CacheTable)])
            fields = set(model.model_fields)
            typo = self._typo(self.pick(sorted(fields)), fields)
            text, needle = f'[{section}]\n{typo} = "x"\n[p]\n{base}', f"[{section}] unknown key '{typo}'"
        elif what == "control_value":
            ch = self.pick(["\\n", "\\r", "\\u001b", "\\t", "\\u007f"])
            key = self.pick(["partition", "account", "time", "qos", "container_image", "env.FOO", "startup_commands"])
            value = f'"a{ch}b"'
            if key == "startup_commands":
                text, needle = f"[p]\n{base}startup_commands = [{value}]\n", "startup_commands.0"
            elif key == "env.FOO":
                text, needle = f"[p]\n{base}[p.env]\nFOO = {value}\n", "env.FOO"
            else:
                text, needle = f"[p]\n{base}{key} = {value}\n", key
        elif what == "control_key":
            text, needle = f'[p]\n{base}"part\\nition" = "x"\n', "control character"
        elif what == "control_table":
            text, needle = f'["p\\u001bq"]\nnodes = 1\n[p]\n{base}', "control character"
        else:
            name = self.pick(["A=1;touch X", "1X", "A B", "A-B", "", "$(x)"])
            text, needle = f"[p]\n{base}[p.env]\n{json.dumps(name)} = \"v\"\n", "env"
        path = folder / "env.toml"
        path.write_text(text)
        argv = ["nano3", "pretrain", "-c", "tiny", "--run", "p", "--dry-run", "data_path=/tmp"]
        if self.rng.random() < 0.5:
            argv = ["--run", "p", "--dry-run", "nano3", "pretrain", "-c", "tiny", "data_path=/tmp"]
        return Case("env_toml_types", f"{what} {text.splitlines()[-1]!r}", cli=argv,
                    env={"NEMOTRON_ENV_FILE": str(path)},
                    check=lambda run: None if needle in run.err and str(path) in run.err
                    else f"error does not name {needle!r} in {path.name}: {run.err!r}")

    # -- --dry-run anywhere in any command
    def dry_run(self, folder: Path):
        from nemotron_cli.dry_run import _PASSTHROUGH
        from tests.reliability import test_dry_run as dr
        from tests.reliability.fuzzing import Case

        path, command = self.pick(self.leaves)
        args = [dr.argument_value(self.world, path, p.name) if self.rng.random() < 0.8 else self.word()
                for p in command.params if p.param_type_name == "argument" and p.required]
        flags = [p.opts[0] for p in command.params
                 if p.param_type_name == "option" and getattr(p, "is_flag", False) and p.opts[0] != "--dry-run"]
        chosen = [f for f in flags if self.rng.random() < 0.4]
        mode = self.pick([[], [], ["--run", "slurm"], ["--batch", "ray"], ["--run", "local"], ["--batch", "slurm"]])
        line = [*path, *args, *chosen, *mode]
        takes_passthrough = bool(getattr(command.callback, _PASSTHROUGH, False))  # a recipe: after `--` is its own
        variant = self.pick(["anywhere"] * 6 + ["twice", "eq", "prefix"] + (["after --"] if not takes_passthrough else []))
        flag = {"eq": "--dry-run=1", "prefix": "--dry"}.get(variant, "--dry-run")
        if variant == "after --":
            line = [*line, "--", "--dry-run"]
        else:
            for _ in range(2 if variant == "twice" else 1):
                line.insert(self.rng.randint(0, len(line)), flag)
        return Case("dry_run", f"{variant}: {' '.join(line)}", cli=line, expect="either",
                    env={"NEMOTRON_ENV_FILE": str(self.world_env)},
                    watch=None if variant in ("anywhere", "twice") else
                    [self.state, self.fixed, self.pretrain_data, self.sft_data])
