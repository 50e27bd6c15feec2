"""Load a recipe config: `-c tiny` → `<config dir>/tiny.yaml` (or `tiny.yml`; `tiny.json` for a runspec whose
`[config] format = "json"`), `-c path/to.yaml` → that file; its `defaults:` list composed in (defaults.py), then
the dotlist overrides applied. A bare name is found by the runspec's own lookup (RunspecConfig.path_of)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nemotron_core.errors import ConfigError, did_you_mean
from nemotron_core.config.defaults import EXTENSIONS, compose
from nemotron_core.config.overrides import apply_overrides
from nemotron_core.config.yaml_bounded import MAX_YAML_BYTES, load_yaml_text
from nemotron_core.runspec import CONFIG_EXTENSIONS, RunspecConfig

#: What a caller that does not know the runspec's format finds (the seed form `parse_config(ctx, dir, default)`):
#: `.yaml`, `.yml`, then `.json`. A runspec's own extensions (RunspecConfig.extensions) narrow it.
ANY_FORMAT = (*EXTENSIONS, ".json")


def resolve_config_path(config_dir: Path, name_or_path: str | None, default: str = "default",
                        extensions: Sequence[str] = ANY_FORMAT) -> Path:
    """A bare name (no '/' and no config extension) is looked up in `config_dir` with the extensions given
    (`.yaml`, `.yml`, `.json` unless a runspec's format narrows them); anything else is a path."""
    name = name_or_path or default
    if "/" in name or name.endswith((*extensions, *ANY_FORMAT)):
        if Path(name).is_file():
            return Path(name).resolve()
        raise ConfigError(f"config file {name} not found; pass an existing config path or a config name")
    lookups = _lookups(Path(config_dir), extensions)
    for lookup in lookups:
        if lookup.path_of(name).is_file():
            return lookup.path_of(name).resolve()
    choices = sorted({c for lookup in lookups for c in lookup.choices()})
    raise ConfigError(
        f"config '{name}' not found in {config_dir}{did_you_mean(name, choices)}; "
        f"available: {', '.join(choices) or 'none'}"
    )


def _lookups(config_dir: Path, extensions: Sequence[str]) -> list[RunspecConfig]:
    """The runspec config formats whose files `extensions` covers, yaml first (omegaconf's files are yaml's)."""
    return [RunspecConfig(dir=config_dir, format=fmt) for fmt in ("yaml", "json")
            if set(CONFIG_EXTENSIONS[fmt]) & set(extensions)]


def load_yaml(path: Path) -> DictConfig:
    """Load one YAML file as a DictConfig; errors name the file (and line when known)."""
    try:
        if Path(path).stat().st_size > MAX_YAML_BYTES:  # refuse before reading it all
            raise ConfigError(f"{path}: YAML refused: it is larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB; "
                              f"a config is a few KiB, keep data in files it points to")
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from None
    data = load_yaml_text(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level, got {type(data).__name__}")
    try:
        return OmegaConf.create(data)
    except Exception as e:  # omegaconf rejects e.g. non-string keys
        raise ConfigError(f"{path}: not a valid config: {str(e).splitlines()[0]}") from None


def load_config(path: Path, extensions: Sequence[str] = ANY_FORMAT) -> DictConfig:
    """One config file with its `defaults:` list composed in (config/defaults.py)."""
    return compose(Path(path), load_yaml, extensions)


def parse_config(config_dir: str | Path, name_or_path: str | None = None,
                 overrides: Sequence[str] = (), default: str = "default",
                 extensions: Sequence[str] = ANY_FORMAT) -> DictConfig:
    """Load the named config, compose its `defaults:` and apply dotlist overrides (`a.b=1`, `+a.c=2`, `~a.d`)."""
    path = resolve_config_path(Path(config_dir), name_or_path, default, extensions)
    cfg = load_config(path, extensions)
    return apply_overrides(cfg, overrides, source=str(path))
