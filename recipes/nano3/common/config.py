"""Load a recipe script's config: `--config FILE.yaml [key=value ...]`.

The toolkit writes a fully resolved plain-YAML config (no `run:` section) and calls
`python <script> --config train.yaml`; by hand, `--config tiny` also finds
`<script dir>/config/data_prep/tiny.yaml`. Overrides are OmegaConf dotlist entries.
Keys are checked against the script's DEFAULTS (a mapping whose `ANY` values accept
any sub-keys, e.g. user-named sources) so a typo is an error, not a silent default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from nemotron_core.errors import ConfigError, did_you_mean, one_of

#: Marks a DEFAULTS entry whose sub-keys are free-form (checked by the script itself).
ANY = object()


def parse_argv(argv: list[str]) -> tuple[str | None, list[str]]:
    config, overrides, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a value: --config path/to/config.yaml")
            config, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        elif arg in ("-h", "--help"):
            raise ConfigError("usage: python data_prep.py --config FILE.yaml [key=value ...]")
        elif "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        else:
            raise ConfigError(f"unexpected argument '{arg}'; use --config FILE.yaml and key=value overrides")
        i += 1
    return config, overrides


def find_config(name: str, script: Path, subdir: str = "data_prep") -> Path:
    path = Path(name)
    if path.is_file():
        return path
    folder = script.parent / "config" / subdir
    for candidate in (folder / name, folder / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    raise ConfigError(
        f"config '{name}' not found (not a file, not in {folder}: {one_of(known) or 'none'})"
        f"{did_you_mean(name, known)}"
    )


def _plain_defaults(defaults: Any) -> Any:
    if defaults is ANY:
        return None
    if isinstance(defaults, dict):
        return {k: _plain_defaults(v) for k, v in defaults.items()}
    return defaults


def check_keys(cfg: Any, schema: Any, where: str = "") -> None:
    """Raise ConfigError for a key that DEFAULTS does not know (recursively)."""
    if schema is ANY or not isinstance(schema, dict) or not isinstance(cfg, dict):
        return
    for key, value in cfg.items():
        name = f"{where}{key}"
        if key not in schema:
            raise ConfigError(f"unknown config key '{name}'{did_you_mean(key, schema)}; known: {one_of(schema)}")
        check_keys(value, schema[key], f"{name}.")


def load_config(argv: list[str], *, script: Path, defaults: dict, subdir: str = "data_prep") -> dict:
    """The resolved config as a plain dict (defaults <- file <- overrides)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    name, overrides = parse_argv(argv)
    if name is None:
        raise ConfigError("no config given; pass --config FILE.yaml (or a name under config/data_prep, e.g. tiny)")
    path = find_config(name, script, subdir)
    try:
        from_file = OmegaConf.load(path)
        from_cli = OmegaConf.from_dotlist(overrides)
    except Exception as e:  # yaml.YAMLError, OmegaConf grammar errors in a dotlist
        raise ConfigError(f"{path}: cannot parse config: {str(e).splitlines()[0]}") from None
    for part, label in ((from_file, str(path)), (from_cli, "command line")):
        raw = OmegaConf.to_container(part, resolve=False)
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"{label}: a config must be a mapping of keys")
        check_keys(raw or {}, defaults)
    merged = OmegaConf.merge(OmegaConf.create(_plain_defaults(defaults)), from_file, from_cli)
    try:
        cfg = OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        msg = str(e).splitlines()[0]
        if "output_dir" in str(key):
            raise ConfigError("output_dir is not set; pass output_dir=/path/to/folder") from None
        if "Unsupported interpolation type" in msg or "resolver" in msg.lower():
            raise ConfigError(
                f"config key '{key}': {msg}; run through the nemotron CLI (it resolves ${{art:...}}) "
                f"or pass {key}=<value> directly"
            ) from None
        raise ConfigError(f"config key '{key}': {msg}") from None
    return cfg


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    """sha256 of a JSON-able value in canonical form."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


#: Keys that say where/how to run, not what to compute (as nemotron_core.content_key).
VOLATILE_KEYS = ("output_dir", "resume")


def config_digest(cfg: dict) -> str:
    """Digest of everything that decides the outputs (not where they go or whether to resume)."""
    return digest(content(cfg))


def content(cfg: dict) -> dict:
    """The config without its volatile keys (what RESULT.json records)."""
    return {k: v for k, v in cfg.items() if k not in VOLATILE_KEYS}


def choice(cfg: dict, key: str, choices: list[str]) -> str:
    """cfg[key] (dotted) if it is one of choices, else a ConfigError naming the key."""
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value not in choices:
        raise ConfigError(f"config key '{key}': '{value}' is not one of {one_of(choices)}"
                          f"{did_you_mean(value, choices)}")
    return value


def resume_flag(cfg: dict) -> bool:
    """`resume`: auto/true (keep what an earlier run of this output_dir finished) or never/false."""
    value = cfg.get("resume", "auto")
    if value in ("auto", True, "true"):
        return True
    if value in ("never", False, "false"):
        return False
    raise ConfigError(f"config key 'resume': '{value}' is not one of auto | never")


def positive_int(cfg: dict, key: str) -> int:
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"config key '{key}': '{value}' must be a positive integer")
    return value
