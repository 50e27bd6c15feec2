"""Secrets in a train config: what is kept as a reference for the job, what is refused.

A value is secret when it comes from a secret environment variable (named like one, or
declared by the profile/env.toml). The toolkit never resolves it: job.yaml/train.yaml keep
the expression as written (`${oc.env:DB_PASS}`), and the job resolves it from its own
environment (the 0600 secrets.env). Used by job.resolve_train_config:

    hidden = hide_secret_keys(raw, "", False, kept)   # secret-named keys: refs kept, literals refused
    ... resolve `hidden` with oc.env reading secrets as markers (resolvers.py) ...
    plain = keep_secret_reads(raw, plain, "", (), kept)  # values that read a secret: expression kept
    check_secret_values(plain, secret_values(...))   # a literal equal to a secret: refused
    put_back(plain, kept)
"""

from __future__ import annotations

import re
from typing import Any, Callable

from nemotron_core.errors import ConfigError
from nemotron_core.secrets import REDACTED, is_secret_key

_RESOLVER = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
_HARMLESS = (None, "", REDACTED, "???", True, False)


def _describe(value: Any) -> str:
    return "text" if isinstance(value, str) else type(value).__name__


def _check_kept(expr: str, path: str) -> None:
    """A kept expression is resolved by the job, which only has OmegaConf's own `oc.*` resolvers."""
    custom = [r for r in _RESOLVER.findall(expr) if not r.startswith("oc.")]
    if custom:
        raise ConfigError(f"config key '{path}' reads a secret through ${{{custom[0]}:...}}; a secret reference "
                          f"may only use ${{oc.env:VAR}} (optionally inside other oc.* resolvers)")


def hide_secret_keys(node: Any, path: str, under_secret: bool, kept: dict[tuple, str], at: tuple = ()) -> Any:
    """Values under secret-named keys: interpolations are kept for the job, literals refused.

    Every leaf under a secret-named key (`api_key`, `db.password`, a list or table under
    `credentials`) must be empty, a bool, or an interpolation such as `${oc.env:VAR}`.
    Interpolations are replaced by REDACTED for this process's resolution and put back,
    unresolved, into job.yaml/train.yaml (`kept`); the job resolves them from its environment.
    """
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            here = f"{path}.{k}" if path else str(k)
            out[k] = hide_secret_keys(v, here, under_secret or is_secret_key(k), kept, (*at, k))
        return out
    if isinstance(node, list):
        return [hide_secret_keys(v, f"{path}.{i}", under_secret, kept, (*at, i)) for i, v in enumerate(node)]
    if not under_secret or any(node is h or (isinstance(node, str) and node == h) for h in _HARMLESS):
        return node
    if isinstance(node, str) and "${" in node:
        _check_kept(node, path)
        kept[at] = node
        return REDACTED
    raise ConfigError(f"config key '{path}' is named like a secret and holds a literal value ({_describe(node)}); "
                      f"write ${{oc.env:VAR}} and export VAR: the job reads secrets from its environment, "
                      f"they are never written into job.yaml")


def keep_secret_reads(raw: Any, plain: Any, path: str, at: tuple, kept: dict[tuple, str]) -> Any:
    """Where a resolved value holds a secret marker, keep the expression as written instead."""
    from nemotron_core.config.resolvers import holds_secret_marker  # lazy: pulls in omegaconf, yaml

    if isinstance(raw, str) and "${" in raw and _contains(plain, holds_secret_marker):
        _check_kept(raw, path)
        kept[at] = raw
        return raw
    if isinstance(plain, dict) and isinstance(raw, dict):
        return {k: keep_secret_reads(raw.get(k), v, f"{path}.{k}" if path else str(k), (*at, k), kept)
                for k, v in plain.items()}
    if isinstance(plain, list) and isinstance(raw, list) and len(raw) == len(plain):
        return [keep_secret_reads(r, v, f"{path}.{i}", (*at, i), kept) for i, (r, v) in enumerate(zip(raw, plain))]
    if _contains(plain, holds_secret_marker):  # no expression of its own to keep (cannot happen in practice)
        raise ConfigError(f"config key '{path}' reads a secret variable in a way that cannot be kept "
                          f"unresolved; write ${{oc.env:VAR}} as that key's whole value")
    return plain


def _contains(node: Any, pred: Callable[[Any], bool]) -> bool:
    if isinstance(node, dict):
        return any(_contains(v, pred) for v in node.values())
    if isinstance(node, list):
        return any(_contains(v, pred) for v in node)
    return pred(node)


def check_secret_values(tree: Any, values: dict[str, str], path: str = "") -> None:
    """No value written (any type, any key, provenance included) may hold a secret's value."""
    if not values:
        return
    if isinstance(tree, dict):
        for k, v in tree.items():
            check_secret_values(v, values, f"{path}.{k}" if path else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            check_secret_values(v, values, f"{path}.{i}")
    elif tree is not None and not isinstance(tree, bool):
        text = str(tree)
        var = next((name for value, name in values.items() if value in text), None)
        if var:
            raise ConfigError(f"config key '{path}' holds the value of the secret ${var}; write ${{oc.env:{var}}} "
                              f"instead: the job reads it from its environment, it is never written into job.yaml")


def put_back(plain: Any, kept: dict[tuple, str]) -> None:
    """Write each kept expression at its place in the resolved tree."""
    for at, expr in kept.items():
        tree = plain
        for part in at[:-1]:
            tree = tree[part]
        tree[at[-1]] = expr
