"""Load a recipe config: `-c tiny` → `<config dir>/tiny.yaml`, `-c path/to.yaml` → that file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nemotron_core.errors import ConfigError, did_you_mean
from nemotron_core.config.overrides import apply_overrides


def resolve_config_path(config_dir: Path, name_or_path: str | None, default: str = "default") -> Path:
    """A bare name (no '/' and no '.yaml') is looked up in `config_dir`; anything else is a path."""
    name = name_or_path or default
    looks_like_path = "/" in name or name.endswith((".yaml", ".yml"))
    path = Path(name) if looks_like_path else Path(config_dir) / f"{name}.yaml"
    if path.is_file():
        return path.resolve()
    if looks_like_path:
        raise ConfigError(f"config file {name} not found; pass an existing YAML path or a config name")
    choices = sorted(p.stem for p in Path(config_dir).glob("*.yaml"))
    raise ConfigError(
        f"config '{name}' not found in {config_dir}{did_you_mean(name, choices)}; "
        f"available: {', '.join(choices) or 'none'}"
    )


_LOADER = None


def yaml_loader():
    """A SafeLoader that also reads `1e-3` / `5E+2` as floats (YAML 1.1 would say string)."""
    global _LOADER
    if _LOADER is None:
        import re

        import yaml

        class Loader(yaml.SafeLoader):
            pass

        float_re = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""", re.X)
        Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
        Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_re, list("-+0123456789."))
        _LOADER = Loader
    return _LOADER


def load_yaml(path: Path) -> DictConfig:
    """Load one YAML file as a DictConfig; errors name the file (and line when known)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from None
    try:
        data = yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level, got {type(data).__name__}")
    try:
        return OmegaConf.create(data)
    except Exception as e:  # omegaconf rejects e.g. non-string keys
        raise ConfigError(f"{path}: not a valid config: {str(e).splitlines()[0]}") from None


def parse_config(config_dir: str | Path, name_or_path: str | None = None,
                 overrides: Sequence[str] = (), default: str = "default") -> DictConfig:
    """Load the named config and apply dotlist overrides (`a.b=1`, `+a.c=2`, `~a.d`)."""
    path = resolve_config_path(Path(config_dir), name_or_path, default)
    cfg = load_yaml(path)
    return apply_overrides(cfg, overrides, source=str(path))
