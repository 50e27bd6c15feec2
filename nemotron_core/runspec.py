"""PEP 723 `[tool.runspec]` parsing: a recipe script describes how it runs.

A recipe script starts with an inline metadata block:

    # /// script
    # dependencies = ["torch"]
    # [tool.runspec]
    # schema = "1"
    # name = "nano3/pretrain"
    # image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
    # [tool.runspec.run]
    # launch = "torchrun"            # torchrun (default) | ray | direct | python (= direct)
    # [tool.runspec.config]
    # dir = "./config"               # relative to the script
    # default = "default"
    # [tool.runspec.resources]
    # nodes = 1
    # gpus_per_node = 8
    # ///

`parse(path)` returns a frozen, validated `Runspec`. Every problem (no block, two
blocks, an unterminated block, bad TOML, an unknown key, a wrong type, a bad
`launch`, a missing config dir or default file) raises `RunspecError` with one line
naming the script, the key, the bad value and what is allowed.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, overload

from nemotron_core.errors import RunspecError, did_you_mean, one_of

LAUNCHES = ("torchrun", "ray", "direct")
#: Accepted spellings that mean one of LAUNCHES (seed scripts write "python" for plain python).
LAUNCH_SYNONYMS = {"python": "direct"}
CONFIG_FORMATS = ("omegaconf", "yaml", "json")
#: Config file extensions per `config.format`, the first one preferred when both exist.
CONFIG_EXTENSIONS = {"omegaconf": (".yaml", ".yml"), "yaml": (".yaml", ".yml"), "json": (".json",)}
SCHEMA_VERSIONS = ("1",)
DEFAULT_CMD = "python {script} --config {config}"
DEFAULT_GPUS_PER_NODE = 8
#: `gpus_per_node = "gpu"`: a whole node's GPUs — the default count, which a profile's gpus_per_node
#: overrides like any runspec value.
GPUS_WHOLE_NODE = "gpu"

_OPEN = re.compile(r"^# /// (?P<type>[A-Za-z0-9-]+)\s*$")
_CLOSE = "# ///"


@dataclass(frozen=True)
class RunspecRun:
    launch: str = "torchrun"
    cmd: str | None = None  # template with {script} and {config}; None = backend default
    workdir: str | None = None  # where the code lives inside the job (remote)

    @property
    def command_template(self) -> str:
        """The `cmd` a non-torchrun launch runs: the header's, else the spec's default."""
        return self.cmd or DEFAULT_CMD


@dataclass(frozen=True)
class RunspecConfig:
    dir: Path  # absolute
    default: str = "default"
    format: str = "omegaconf"

    @property
    def extensions(self) -> tuple[str, ...]:
        return CONFIG_EXTENSIONS[self.format]

    def path_of(self, name: str) -> Path:
        """The file of config `name` in the config dir (the preferred extension when none exists)."""
        for ext in self.extensions:
            if (self.dir / f"{name}{ext}").is_file():
                return self.dir / f"{name}{ext}"
        return self.dir / f"{name}{self.extensions[0]}"

    @property
    def default_path(self) -> Path:
        return self.path_of(self.default)

    def choices(self) -> list[str]:
        """Config names available in the config dir (reads the directory)."""
        return sorted({p.stem for ext in self.extensions for p in self.dir.glob(f"*{ext}") if p.is_file()})


@dataclass(frozen=True)
class RunspecResources:
    nodes: int = 1
    gpus_per_node: int = DEFAULT_GPUS_PER_NODE  # "gpu" in the header reads as this default


@dataclass(frozen=True)
class Runspec:
    name: str
    script_path: Path
    config: RunspecConfig
    run: RunspecRun = RunspecRun()
    resources: RunspecResources = RunspecResources()
    image: str | None = None
    setup: str | None = None
    docs: str | None = None
    schema: str = "1"
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    dependencies: tuple[str, ...] = ()
    digest: str = ""  # sha256 of the metadata block: changes when the runspec changes

    @property
    def config_dir(self) -> Path:
        return self.config.dir


# --------------------------------------------------------------------------- block


def extract_script_block(text: str, source: str = "<script>") -> str | None:
    """The TOML inside `# /// script ... # ///`, or None when the script has none."""
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != _CLOSE:
            line = lines[i]
            if line == "#":
                body.append("")
            elif line.startswith("# "):
                body.append(line[2:])
            else:
                raise RunspecError(
                    f"{source}:{i + 1}: unterminated '# /// {m['type']}' block opened at line "
                    f"{start + 1}: every line must start with '# ' until a closing '# ///'"
                )
            i += 1
        if i == len(lines):
            raise RunspecError(
                f"{source}:{start + 1}: unterminated '# /// {m['type']}' block: add a closing '# ///' line"
            )
        if m["type"] == "script":
            blocks.append((start + 1, "\n".join(body)))
        i += 1
    if len(blocks) > 1:
        where = ", ".join(str(line) for line, _ in blocks)
        raise RunspecError(f"{source}: {len(blocks)} '# /// script' blocks (lines {where}); PEP 723 allows one")
    return blocks[0][1] if blocks else None


# --------------------------------------------------------------------------- validation


class _Checker:
    """Reads one TOML table, checking keys and types, naming the script on error."""

    def __init__(self, source: str, table: Mapping[str, Any], prefix: str, allowed: tuple[str, ...]):
        self.source, self.table, self.prefix = source, table, prefix
        unknown = [k for k in table if k not in allowed]
        if unknown:
            k = unknown[0]
            raise RunspecError(
                f"{source}: unknown key '{self._key(k)}'{did_you_mean(k, allowed)}; "
                f"allowed keys in [{prefix}]: {', '.join(allowed)}"
            )

    def _key(self, k: str) -> str:
        return f"{self.prefix}.{k}"

    def _type_error(self, k: str, v: Any, want: str) -> RunspecError:
        return RunspecError(f"{self.source}: '{self._key(k)}' = {v!r} must be {want}")

    @overload
    def text(self, k: str, default: str, *, required: bool = False) -> str: ...
    @overload
    def text(self, k: str, default: None = None, *, required: bool = False) -> str | None: ...

    def text(self, k: str, default: str | None = None, *, required: bool = False) -> str | None:
        if k not in self.table:
            if required:
                raise RunspecError(f"{self.source}: missing required key '{self._key(k)}' (a string)")
            return default
        v = self.table[k]
        if not isinstance(v, str) or (required and not v.strip()):
            raise self._type_error(k, v, "a non-empty string" if required else "a string")
        return v

    def choice(self, k: str, choices: tuple[str, ...], default: str) -> str:
        v = self.text(k, default)
        if v not in choices:
            raise RunspecError(
                f"{self.source}: '{self._key(k)}' = {v!r} is not one of {one_of(choices)}{did_you_mean(v, choices)}"
            )
        return v

    def integer(self, k: str, default: int, minimum: int, *, literal: str | None = None) -> int | str:
        v = self.table.get(k, default)
        if literal is not None and v == literal:
            return v
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            also = f" or the string {literal!r}" if literal else ""
            raise self._type_error(k, v, f"an integer >= {minimum}{also}")
        return v

    def table_of(self, k: str) -> Mapping[str, Any]:
        v = self.table.get(k, {})
        if not isinstance(v, dict):
            raise self._type_error(k, v, "a table")
        return v


def _check_config_files(source: str, config: RunspecConfig, written_dir: Any) -> None:
    if not config.dir.is_dir():
        raise RunspecError(f"{source}: 'tool.runspec.config.dir' = {written_dir!r}: no such directory {config.dir}; "
                           f"create it or fix the path (relative to the script)")
    if not config.default_path.is_file():
        raise RunspecError(
            f"{source}: 'tool.runspec.config.default' = {config.default!r}: {config.default_path} does not exist; "
            f"available: {', '.join(config.choices()) or 'none'}"
        )


def _build(source: str, script: Path, meta: Mapping[str, Any], block: str) -> Runspec:
    tool = meta.get("tool", {})
    spec = tool.get("runspec") if isinstance(tool, dict) else None
    if not isinstance(spec, dict):
        raise RunspecError(f"{source}: the '# /// script' block has no [tool.runspec] table; add one (name, run, config)")

    top = _Checker(source, spec, "tool.runspec",
                   ("schema", "name", "image", "setup", "docs", "run", "config", "resources", "env"))
    schema = top.choice("schema", SCHEMA_VERSIONS, "1")
    name = top.text("name", "", required=True)  # required: "" never comes back

    run_t = _Checker(source, top.table_of("run"), "tool.runspec.run", ("launch", "cmd", "workdir"))
    launch = run_t.choice("launch", (*LAUNCHES, *LAUNCH_SYNONYMS), "torchrun")
    cmd = run_t.text("cmd")
    if cmd is not None and not cmd.strip():
        raise RunspecError(f"{source}: 'tool.runspec.run.cmd' = {cmd!r} is empty; remove it to run {DEFAULT_CMD!r}")
    run = RunspecRun(launch=LAUNCH_SYNONYMS.get(launch, launch), cmd=cmd, workdir=run_t.text("workdir"))

    cfg_t = _Checker(source, top.table_of("config"), "tool.runspec.config", ("dir", "default", "format"))
    cfg_dir = (script.parent / cfg_t.text("dir", "./config")).resolve()
    config = RunspecConfig(dir=cfg_dir, default=cfg_t.text("default", "default"),
                           format=cfg_t.choice("format", CONFIG_FORMATS, "omegaconf"))
    # A script whose header has no [config] table and no ./config folder takes no config (the spec's
    # container-build steps): nothing to check here; running it with a config is refused by the loader.
    if "config" in spec or cfg_dir.exists():
        _check_config_files(source, config, cfg_t.table.get("dir", "./config"))

    res_t = _Checker(source, top.table_of("resources"), "tool.runspec.resources", ("nodes", "gpus_per_node"))
    gpus = res_t.integer("gpus_per_node", DEFAULT_GPUS_PER_NODE, 0, literal=GPUS_WHOLE_NODE)
    resources = RunspecResources(nodes=int(res_t.integer("nodes", 1, 1)),
                                 gpus_per_node=gpus if isinstance(gpus, int) else DEFAULT_GPUS_PER_NODE)

    env = top.table_of("env")
    for k, v in env.items():
        if not isinstance(v, (str, int, float, bool)):
            raise RunspecError(f"{source}: 'tool.runspec.env.{k}' = {v!r} must be a string, number or boolean")

    deps = meta.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise RunspecError(f"{source}: 'dependencies' = {deps!r} must be a list of strings (PEP 723)")

    return Runspec(
        name=name, script_path=script, config=config, run=run, resources=resources,
        image=top.text("image"), setup=top.text("setup"), docs=top.text("docs"), schema=schema,
        env=MappingProxyType({k: str(v) for k, v in env.items()}), dependencies=tuple(deps),
        digest=hashlib.sha256(block.encode()).hexdigest(),
    )


def parse_text(text: str, script_path: str | Path) -> Runspec:
    """Parse the runspec from a script's text (the path locates the config dir)."""
    script = Path(script_path).resolve()
    source = str(script_path)
    block = extract_script_block(text, source)
    if block is None:
        raise RunspecError(f"{source}: no '# /// script' block; add a PEP 723 block with a [tool.runspec] table")
    try:
        meta = tomllib.loads(block)
    except tomllib.TOMLDecodeError as e:
        raise RunspecError(f"{source}: invalid TOML in the '# /// script' block: {e}") from None
    return _build(source, script, meta, block)


def parse(script_path: str | Path) -> Runspec:
    """Read a recipe script and return its validated `Runspec`."""
    path = Path(script_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunspecError(f"{script_path}: recipe script not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunspecError(f"{script_path}: cannot read recipe script: {e}") from None
    return parse_text(text, path)
