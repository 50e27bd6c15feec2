"""`defaults:` lists: a config composed of other config files, as in the seed's (Hydra-style) configs.

    defaults:
      - base               # <this dir>/base.yaml merged at the top level
      - model: small       # <this dir>/model/small.yaml merged under `model:`
      - _self_             # this file's own keys (last when not listed: they win)

Entries are read in order, each later one merged over the ones before (sections merge key by
key, lists and values are replaced). A composed file may have its own `defaults:`. Names are
data: they must stay inside the top config's folder (no absolute paths, no `..` out of it, no
symlink leading out), a file composed into itself (directly or through others) is refused
naming the cycle, and one config may pull in at most MAX_FILES files. `.yml` is found like `.yaml`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nemotron_core.errors import ConfigError

MAX_FILES = 64
SELF = "_self_"
EXTENSIONS = (".yaml", ".yml")


def compose(path: Path, load: Callable[[Path], DictConfig], extensions: Sequence[str] = EXTENSIONS) -> DictConfig:
    """`path`'s config with its `defaults:` list applied (recursively); `load` reads one file."""
    path = Path(path).resolve()
    root = path.parent
    count = [0]

    def one(file: Path, chain: tuple[Path, ...]) -> DictConfig:
        if file in chain:
            names = " -> ".join(_shown(p, root) for p in (*chain, file))
            raise ConfigError(f"{_shown(chain[0], root)}: defaults cycle: {names}; remove one of these entries")
        count[0] += 1
        if count[0] > MAX_FILES:
            raise ConfigError(f"{_shown(chain[0] if chain else file, root)}: defaults pull in more than {MAX_FILES} "
                              f"files; flatten the composition")
        cfg = load(file)
        if "defaults" not in cfg:
            return cfg
        entries = OmegaConf.to_container(cfg._get_node("defaults"), resolve=False)
        where = f"{file}: defaults"
        if not isinstance(entries, list):
            raise ConfigError(f"{where} must be a list (e.g. [base, {{model: small}}, _self_])")
        own = cfg.copy()
        del own["defaults"]
        parts: list[DictConfig] = []
        for i, entry in enumerate(entries):
            if entry == SELF:
                parts.append(own)
                continue
            group, name = _entry(entry, f"{where}[{i}]")
            if name is None:  # `group: null` selects nothing
                continue
            target = _find(file.parent, f"{group}/{name}" if group else name, root, extensions, f"{where}[{i}]")
            sub = one(target, (*chain, file))
            parts.append(OmegaConf.create({group: sub}) if group else sub)
        if SELF not in entries:
            parts.append(own)
        merged = OmegaConf.merge(*parts) if parts else OmegaConf.create({})
        assert isinstance(merged, DictConfig)
        return merged

    return one(path, ())


def _entry(entry: Any, where: str) -> tuple[str | None, str | None]:
    """A defaults entry: "name" -> (None, name); {group: name} -> (group, name)."""
    if isinstance(entry, str) and entry:
        return None, entry
    if isinstance(entry, dict) and len(entry) == 1:
        (group, name), = entry.items()
        if isinstance(group, str) and group and (name is None or isinstance(name, str) and name):
            return group, name
    raise ConfigError(f"{where} = {entry!r}: expected a config name (base), a group selection "
                      f"({{model: small}}) or _self_")


def _find(base: Path, name: str, root: Path, extensions: Sequence[str], where: str) -> Path:
    """The file `name` names, relative to `base`, which must lie inside `root`."""
    if name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
        raise ConfigError(f"{where} = {name!r}: give a name relative to the config's folder (no leading /, "
                          f"no . or .. parts)")
    candidates = [base / name] if name.endswith(tuple(extensions)) else [base / f"{name}{ext}" for ext in extensions]
    for candidate in candidates:
        if candidate.is_file():
            real = candidate.resolve()
            if not real.is_relative_to(root):
                raise ConfigError(f"{where} = {name!r}: {candidate} leads outside the config folder {root} "
                                  f"(a symlink); copy the file in instead")
            return real
    tried = ", ".join(str(c.relative_to(base)) for c in candidates)
    raise ConfigError(f"{where} = {name!r}: no such config next to it (tried {tried} in {base})")


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
