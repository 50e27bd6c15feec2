"""Bounded YAML reading: one document may not expand past a size, a depth or a node count.

Used by the config loader (files) and the override parser (values on the command line), so
a hostile config or override fails in one line within a second instead of running for
minutes (alias bombs) or ending in a RecursionError (deep nesting).
"""

from __future__ import annotations

import re
from typing import Any

from nemotron_core.errors import ConfigError

_LOADER = None

#: Bounds on what one YAML document may expand to. Real configs are a few hundred nodes
#: and under ten levels deep; the bounds stop alias bombs ("billion laughs", `<<` merge
#: chains), recursive aliases and deep nesting before PyYAML's recursive composer or
#: OmegaConf's copy of the expanded tree take minutes or a RecursionError. OmegaConf
#: builds a few thousand nodes a second (the CLI builds the tree several times), so the
#: nodes that aliases add on top of the written document get a much smaller budget than the
#: document itself: a 300-byte alias bomb just under MAX_YAML_NODES kept the CLI busy 30 s.
MAX_YAML_BYTES = 8 * 1024 * 1024
MAX_YAML_DEPTH = 100
MAX_YAML_NODES = 50_000
MAX_ALIAS_NODES = 2_000


class YamlBoundsError(ValueError):
    """A YAML document exceeds MAX_YAML_DEPTH / MAX_YAML_NODES or aliases itself."""


def expanded_size(root: Any, limit: int = MAX_YAML_NODES, alias_limit: int = MAX_ALIAS_NODES) -> int:
    """Nodes of the tree the composed graph stands for once aliases are expanded.

    Aliases make the composed graph a DAG (or a cycle): sizes are memoized per node so
    this is linear in the graph, while the number it returns is what construction and
    OmegaConf would build. Raises YamlBoundsError past `limit`, when aliases add more than
    `alias_limit` nodes to the written ones, or on a cycle.
    """
    import yaml  # lazy: yaml is a heavy import

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:  # iterative post-order: the depth bound is checked separately
        node, done = stack.pop()
        key = id(node)
        if key in sizes and not done:
            continue
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            if key in on_path:
                raise YamlBoundsError("an alias refers to the node that contains it (recursive alias)")
            on_path.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in on_path:
                    raise YamlBoundsError("an alias refers to the node that contains it (recursive alias)")
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        on_path.discard(key)
        total = 1 + sum(sizes[id(c)] for c in children)
        if total > limit:
            raise YamlBoundsError(f"it expands to more than {limit:,} nodes (aliases repeat content); "
                                  f"write the content out or use fewer aliases")
        sizes[key] = total
    repeated = sizes[id(root)] - len(sizes)  # every distinct node was written once; the rest are alias copies
    if repeated > alias_limit:
        raise YamlBoundsError(f"it expands to more than {alias_limit:,} nodes through aliases (aliases repeat "
                              f"content); write the content out or use fewer aliases")
    return sizes[id(root)]


def yaml_loader() -> type:
    """A bounded SafeLoader that also reads `1e-3` / `5E+2` as floats (YAML 1.1 would say string).

    Bounded: nesting deeper than MAX_YAML_DEPTH, or a document whose aliases expand to more
    than MAX_YAML_NODES nodes, raises YamlBoundsError (checked on the composed node graph,
    before any Python object is built).
    """
    global _LOADER
    if _LOADER is None:
        import yaml  # lazy: yaml is a heavy import

        class Loader(yaml.SafeLoader):
            _depth = 0

            def compose_node(self, parent: Any, index: Any) -> Any:
                # PyYAML composes recursively: bound the depth before Python's own limit is hit.
                self._depth += 1
                try:
                    if self._depth > MAX_YAML_DEPTH:
                        mark = self.peek_event().start_mark
                        raise YamlBoundsError(f"nesting deeper than {MAX_YAML_DEPTH} levels (line {mark.line + 1})")
                    return super().compose_node(parent, index)
                finally:
                    self._depth -= 1

            def get_single_node(self) -> Any:
                node = super().get_single_node()
                if node is not None:
                    expanded_size(node)
                return node

        float_re = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""", re.X)
        Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
        Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_re, list("-+0123456789."))
        _LOADER = Loader
    return _LOADER


def check_yaml_size(text: str) -> None:
    if len(text) > MAX_YAML_BYTES:
        raise YamlBoundsError(f"it is larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB; "
                              f"a config is a few KiB, keep data in files it points to")


def load_bounded(text: str) -> Any:
    """One YAML document through the size check and the bounded loader; raises YamlBoundsError or
    yaml.YAMLError (callers word the error for where the text came from)."""
    import yaml  # lazy: yaml is a heavy import

    check_yaml_size(text)
    return yaml.load(text, Loader=yaml_loader())


def load_yaml_text(text: str, where: str) -> Any:
    """Parse one YAML document with the bounded loader; errors are ConfigErrors naming `where`."""
    import yaml  # lazy: yaml is a heavy import

    try:
        return load_bounded(text)
    except YamlBoundsError as e:
        raise ConfigError(f"{where}: YAML refused: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark else where
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{at}: invalid YAML: {problem}") from None
