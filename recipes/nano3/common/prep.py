"""The opening every data-prep script shares: config, output folder, world, tokenizer, inputs.

    p = prep.open_prep(argv, script=Path(__file__), defaults=DEFAULTS, synthetic=..., files=..., fields=(...))
    ...the script's own checks (workers, seq_length, ...)...
    p.start()        # the output folder is begun (and the tokenizer copied) only now

Everything `open_prep` reads is checked before anything is written (only an earlier run's
RESULT.json is invalidated: a failed rerun must not leave it behind): the config against the
script's DEFAULTS, `on_error`, `resume`, the world, the pretrain tokenizer and its world (when
the script has `tokenizer_path`), every source and its input files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config, outputs, readers
from . import tokenizer as toks
from .world import World, WorldConfig, check_same_world

#: The DEFAULTS keys every data-prep script has; `defaults(...)` adds a script's own.
COMMON_DEFAULTS: dict[str, Any] = {
    "output_dir": "???",  # set by the toolkit / task: a job-specific folder
    "resume": "auto",  # auto: keep shards an earlier (killed) run finished in output_dir | never
    "seed": 1234,
    "on_error": "raise",  # raise | skip (count) malformed input records
    "world": config.ANY,  # common/world.py WorldConfig
    "sources": config.ANY,  # name -> {type: synthetic | files, weight, ...} (readers.normalize_sources)
}
TOKENIZER_KEY = "tokenizer_path"  # the pretrain data's tokenizer folder (or a tokenizer.json)


def defaults(**own: Any) -> dict[str, Any]:
    """COMMON_DEFAULTS plus (or overriding) the script's own keys."""
    return {**COMMON_DEFAULTS, **own}


@dataclass(frozen=True)
class Prep:
    cfg: dict[str, Any]
    out: Path  # absolute: Ray workers may run elsewhere
    resume: bool
    world: World
    sources: dict[str, dict[str, Any]]  # name -> normalized settings
    inputs: dict[str, dict[str, Any]]  # name -> resolved input (readers.resolve_source)
    tokenizer: Any = None  # tokenizers.Tokenizer from `tokenizer_path`, when the script has that key
    tokenizer_json: str | None = None

    def start(self) -> None:
        """Begin the output folder; a copy of `tokenizer_path` goes to out/tokenizer."""
        outputs.start(self.out)
        if self.tokenizer is not None:
            toks.install(self.cfg[TOKENIZER_KEY], self.out / "tokenizer", TOKENIZER_KEY)


def open_prep(argv: list[str], *, script: Path, defaults: dict[str, Any], synthetic: dict[str, Any],
              files: dict[str, Any], fields: tuple[str, ...],
              allowed: tuple[str, ...] = readers.FORMATS) -> Prep:
    """Load and check the config and every input (one-line error naming the key or file), write nothing.

    `synthetic` / `files`: the script's extra keys per source type (with defaults); `fields`: the
    `*_key` settings naming the record fields a file source must have; `allowed`: its input formats.
    Sources get `num_shards` (default: the config's `num_shards`, else 1).
    """
    cfg = config.load_config(argv, script=script, defaults=defaults)
    out = Path(cfg["output_dir"]).absolute()
    outputs.invalidate(out)
    config.choice(cfg, "on_error", ["raise", "skip"])
    resume = config.resume_flag(cfg)
    world = World(WorldConfig.from_dict(cfg["world"]))
    tok, tok_json = None, None
    if TOKENIZER_KEY in defaults:
        tok, tok_json = toks.load(cfg[TOKENIZER_KEY], TOKENIZER_KEY)
        check_same_world(world, cfg[TOKENIZER_KEY])
    num_shards = config.positive_int(cfg, "num_shards") if "num_shards" in defaults else 1
    sources = readers.normalize_sources(cfg["sources"], num_shards=num_shards, synthetic=synthetic, files=files)
    # every input error (missing file, unknown format, empty input) surfaces here, before any work
    inputs = {name: readers.resolve_source(src, world.digest, allowed=allowed, columns=readers.fields(src, *fields))
              for name, src in sources.items()}
    return Prep(cfg=cfg, out=out, resume=resume, world=world, sources=sources, inputs=inputs, tokenizer=tok,
                tokenizer_json=tok_json)
