"""Dotlist overrides, Hydra-style but strict.

- `a.b=1`   sets an existing key (a typo is an error listing the nearest keys)
- `+a.c=2`  adds a new key (error if it already exists: use `a.c=2`)
- `~a.d`    removes a key
Values are YAML scalars/collections (`lr=1e-3`, `tags=[a,b]`, `x=null`); list items
are addressed by index (`layers.0.size=8`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nemotron_core.config.yaml_bounded import YamlBoundsError, load_bounded
from nemotron_core.errors import ConfigError
from nemotron_core.secrets import REDACTED, is_secret_key

_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")


def all_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key in the config (leaves and inner nodes)."""
    keys: list[str] = []
    items: Iterable = cfg.items_ex(resolve=False) if isinstance(cfg, DictConfig) else enumerate(cfg)
    for k, _ in items:
        dotted = f"{prefix}{k}"
        keys.append(dotted)
        node = cfg._get_node(k) if isinstance(cfg, (DictConfig, ListConfig)) else None
        if isinstance(node, (DictConfig, ListConfig)) and not node._is_missing() and not node._is_none():
            keys.extend(all_keys(node, dotted + "."))
    return keys


def _near(key: str, cfg: Any) -> str:
    keys = all_keys(cfg)
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    if not close:  # fall back to siblings of the deepest existing parent
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        close = [k for k in keys if k.rsplit(".", 1)[0] == parent and "." in k] if parent else [k for k in keys if "." not in k]
        close = close[:5]
    return f"; near keys: {', '.join(close)}" if close else ""


def _exists(cfg: Any, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig):
            if node._get_node(part) is None:  # `part in node` is False for a `???` value
                return False
            node = node._get_node(part)
        elif isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                return False
            node = node._get_node(int(part))
        else:
            return False
    return True


def _parse_value(text: str, item: str, source: str) -> Any:
    """The override's value as YAML, through the same bounded loader as config files."""
    import yaml  # lazy: yaml is a heavy import

    if text == "":
        return ""
    try:
        return load_bounded(text)
    except YamlBoundsError as e:
        raise ConfigError(f"override '{_shown(item)}' ({source}): YAML refused: {e}") from None
    except yaml.YAMLError as e:
        shown = "the value" if _shown(item) != item else f"value {text!r}"
        raise ConfigError(f"override '{_shown(item)}' ({source}): {shown} is not valid YAML: "
                          f"{getattr(e, 'problem', e)}; quote it") from None


def apply_overrides(cfg: DictConfig, overrides: Sequence[str], source: str = "command line") -> DictConfig:
    """Return a copy of `cfg` with the overrides applied, in order."""
    cfg = cfg.copy()
    for item in overrides:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"override {item!r}: expected key=value, +key=value or ~key")
        if item.startswith("~"):
            key = item[1:].split("=", 1)[0]
            _check_key(key, item)
            if not _exists(cfg, key):
                raise ConfigError(f"override '{_shown(item)}': cannot remove '{key}', it is not in the config{_near(key, cfg)}")
            parent_key, _, leaf = key.rpartition(".")
            parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
            if isinstance(parent, ListConfig):
                del parent[int(leaf)]
            else:
                del parent[leaf]
            continue
        add = item.startswith("+")
        body = item[1:] if add else item
        if "=" not in body:
            raise ConfigError(f"override '{_shown(item)}': expected key=value (or +key=value to add, ~key to remove)")
        key, text = body.split("=", 1)
        _check_key(key, item)
        exists = _exists(cfg, key)
        if add and exists:
            raise ConfigError(f"override '{_shown(item)}': '{key}' already exists; drop the '+' to change it")
        if not add and not exists:
            raise ConfigError(f"override '{_shown(item)}': no key '{key}' in the config{_near(key, cfg)}; "
                              f"use '+{key}=...' to add a new key")
        value = _parse_value(text, item, source)
        parent_key = key.rpartition(".")[0]
        if parent_key and not isinstance(OmegaConf.select(cfg, parent_key, default=None), (DictConfig, ListConfig)) \
                and _exists(cfg, parent_key):
            raise ConfigError(f"override '{_shown(item)}': '{parent_key}' is a value, not a section")
        try:
            OmegaConf.update(cfg, key, value, merge=False, force_add=add)
        except Exception as e:
            raise ConfigError(f"override '{_shown(item)}': {str(e).splitlines()[0]}") from None
    return cfg


def _shown(item: str) -> str:
    """The override as errors show it: the value of a secret-named key is never echoed."""
    head, eq, value = item.partition("=")
    if eq and value and any(is_secret_key(part) for part in head.lstrip("+~").split(".")):
        return f"{head}={REDACTED}"
    return item if len(item) <= 120 else f"{item[:100]}... ({len(item)} characters)"


def _check_key(key: str, item: str) -> None:
    if not _KEY.match(key):
        raise ConfigError(f"override '{_shown(item)}': '{key}' is not a valid dotted key (letters, digits, _ and -, joined by '.')")
