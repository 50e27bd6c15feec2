"""OmegaConf resolvers: `${art:...}` and `${auto_mount:...}`.

`${art:NAME[:VERSION|ALIAS][,FIELD]}` asks the artifact lookup for one field (default `path`)
of one artifact version and records the version it pinned, e.g.
`${art:nano3-pretrain-model,path}` → the model dir of `nano3-pretrain-model:v3`, and
job.yaml records `run.artifacts["nano3-pretrain-model"] = "nano3-pretrain-model:v3"`.
The lookup is pluggable (`set_artifact_lookup`) so that the config pipeline does not
depend on a registry backend; with none set, `${art:}` fails with a clear error.
NAME may also be a key of the config's `run:` section (`run.data: nano3-sft-data:latest`,
then `${art:data,path}`), as in the seed; see run_section.py.

`${auto_mount:SRC[,DEST]}` makes a host path available inside a containerized job: it
returns SRC for local runs and DEST (default `/nemo_run/mounts/<basename>`) for remote
ones, and records `SRC:DEST` so the executor adds the mount. `${auto_mount:git+URL@REF[,DEST]}`
does the same for a git checkout, cloned at submit time (git_mounts.py; job.yaml's run.repos).

`${oc.env:NAME}` is wrapped: inside `resolution_scope(secret_names=...)`, reading a secret
variable returns a marker (`secret_marker(NAME)`) instead of the value, whatever resolvers
nest around it (`${oc.decode:${oc.env:DB_PASS}}`). job.py finds the marker in the resolved
config and keeps that value's expression unresolved, so the job reads the secret from its
own environment. Outside a scope `oc.env` behaves as OmegaConf's.

Resolution happens inside `resolution_scope()`, which collects what was pinned/mounted.

Inputs not published yet (a dry run on a fresh state folder): the caller may pass
`pending=fn` to `resolution_scope`, `fn(ref) -> str | None` returning, for a ref that is
not published, who produces it (e.g. "`nemotron nano3 data prep pretrain`"). Such a ref then
resolves to `<pending: REF, produced by ...>` and is recorded in `Resolution.pending`
instead of pinned. The toolkit knows no stage table: the pipeline supplies `fn`. Without
it (every real run), an unpublished input fails as the lookup says.
"""

from __future__ import annotations

import contextlib
import contextvars
import posixpath
import secrets as _random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from omegaconf import OmegaConf

from nemotron_core.config.git_mounts import parse_git_source
from nemotron_core.errors import ArtifactError, ConfigError
from nemotron_core.paths import state_dir

#: (ref "name[:version|alias]", field) -> (value, pinned ref "name:vN")
ArtifactLookup = Callable[[str, str], tuple[Any, str]]
#: ref -> None when it is published, else who produces it ("`nemotron nano3 sft`", "not published yet")
PendingCheck = Callable[[str], "str | None"]

_lookup: ArtifactLookup | None = None


@dataclass
class Resolution:
    """What one resolution pass pinned and mounted."""

    remote: bool = False
    artifacts: dict[str, str] = field(default_factory=dict)  # ref as written -> pinned ref
    mounts: list[str] = field(default_factory=list)  # "SRC:DEST"
    pins: dict[str, str] = field(default_factory=dict)  # ref as written -> pinned (cache for one pass)
    secret_names: frozenset[str] = frozenset()  # env vars whose value must not be resolved here
    secrets_read: set[str] = field(default_factory=set)  # which of them the config referenced
    pending_check: PendingCheck | None = None  # dry runs: unpublished inputs become placeholders
    pending: dict[str, str] = field(default_factory=dict)  # ref (with :latest when unversioned) -> producer
    aliases: dict[str, str] = field(default_factory=dict)  # the config's run.KEY -> ref (`${art:KEY,...}`)
    git_cache: str | None = None  # where `${auto_mount:git+...}` clones live, as the job's host sees it
    repos: list[dict[str, str]] = field(default_factory=list)  # {url, ref, path, target}: cloned at submit time


_current: contextvars.ContextVar[Resolution | None] = contextvars.ContextVar("nemotron_resolution", default=None)


def set_artifact_lookup(fn: ArtifactLookup | None) -> None:
    """Install the function `${art:}` uses (None removes it)."""
    global _lookup
    _lookup = fn


#: Random per process, so a config cannot spell a marker by hand.
_MARKER_PREFIX = f"__NEMOTRON_SECRET_{_random.token_hex(8)}_"


def secret_marker(name: str) -> str:
    """What `${oc.env:NAME}` resolves to inside a scope when NAME is a secret variable."""
    return f"{_MARKER_PREFIX}{name}__"


def holds_secret_marker(value: Any) -> bool:
    return isinstance(value, str) and _MARKER_PREFIX in value


@contextlib.contextmanager
def resolution_scope(remote: bool = False, secret_names: Iterable[str] = frozenset(),
                     pending: PendingCheck | None = None, aliases: dict[str, str] | None = None,
                     git_cache: str | None = None) -> Iterator[Any]:
    """Collect pinned artifact versions and mounts while resolving one config."""
    register_resolvers()
    res = Resolution(remote=remote, secret_names=frozenset(secret_names), pending_check=pending,
                     aliases=dict(aliases or {}), git_cache=git_cache)
    token = _current.set(res)
    try:
        yield res
    finally:
        _current.reset(token)


def _env(key: str, *default: Any) -> Any:
    """OmegaConf's `oc.env`, except that a secret variable reads as its marker inside a scope."""
    from omegaconf.resolvers import oc  # lazy: omegaconf.resolvers is a heavy import

    res = _current.get()
    if res is not None and str(key) in res.secret_names:
        res.secrets_read.add(str(key))
        return secret_marker(str(key))
    return oc.env(key, *default)


def _refuse_secret(resolver: str, value: Any) -> None:
    if holds_secret_marker(value):
        raise ConfigError(f"${{{resolver}:...}}: an argument reads a secret variable; secrets are only "
                          f"read by the job from its environment, never used to build the job")


def _art(ref: str, fld: str | None = None) -> Any:
    _refuse_secret("art", ref)
    _refuse_secret("art", fld)
    if fld is None:  # `${art:data}` means its path, as in the seed
        fld = "path"
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"${{art:{ref}}}: expected ${{art:NAME[:VERSION][,FIELD]}}, e.g. ${{art:nano3-sft-model,path}}")
    if _lookup is None:
        raise ArtifactError(f"${{art:{ref},{fld}}}: no artifact registry is configured for this run; "
                            f"set [artifacts] in env.toml or pass the value directly")
    res = _current.get()
    alias = ref if res is not None and ref in res.aliases else None
    if alias is not None:  # `${art:data,path}` with `run.data: nano3-sft-data:latest`
        ref = res.aliases[alias]  # type: ignore[union-attr]
    if res is not None and res.pending_check is not None and ref not in res.pins:
        producer = res.pending_check(ref)
        if producer is not None:
            shown = ref if ":" in ref else f"{ref}:latest"
            res.pending[shown] = producer
            return pending_placeholder(shown, producer)
    # Within one resolution pass, every mention of the same ref pins the same version.
    pinned_ref = res.pins.get(ref) if res else None
    try:
        value, pinned = _lookup(pinned_ref or ref, fld)
    except ArtifactError as e:
        if alias is not None:
            raise ArtifactError(f"${{art:{alias},{fld}}} (run.{alias} = {ref}): {e}") from None
        if res is not None and res.aliases and ":" not in ref:
            raise ArtifactError(f"{e}; aliases in this config's run: section: {', '.join(sorted(res.aliases))}") \
                from None
        raise
    if res is not None:
        res.pins.setdefault(ref, pinned)
        res.artifacts[ref] = pinned
    return value


def pending_placeholder(ref: str, producer: str) -> str:
    """What an unpublished input reads as in a dry run's config."""
    return f"<pending: {ref}, {producer}>"


def _auto_mount(src: str, dest: str | None = None) -> str:
    _refuse_secret("auto_mount", src)
    _refuse_secret("auto_mount", dest)
    if isinstance(src, str) and src.startswith("git+"):
        return _git_mount(src, dest)
    if not isinstance(src, str) or not src.startswith("/"):
        raise ConfigError(f"${{auto_mount:{src}}}: the source must be an absolute host path")
    res = _current.get()
    target = dest or posixpath.join("/nemo_run/mounts", posixpath.basename(src.rstrip("/")) or "root")
    if res is None or not res.remote:
        return src
    mount = f"{src}:{target}"
    if mount not in res.mounts:
        res.mounts.append(mount)
    return target


def _git_mount(src: str, dest: str | None) -> str:
    """`${auto_mount:git+URL@REF[,TARGET]}`: recorded for a clone at submit time (git_mounts.py), no I/O here."""
    repo = parse_git_source(src, dest)
    res = _current.get()
    if res is not None and res.git_cache:
        cache = res.git_cache
    else:
        cache = str(state_dir() / "cache" / "git")
    path = posixpath.join(cache, repo.key)
    if res is None:
        return path
    entry = {"url": repo.url, "ref": repo.ref, "path": path, "target": repo.target}
    if entry not in res.repos:
        res.repos.append(entry)
    if not res.remote:
        return path
    mount = f"{path}:{repo.target}"
    if mount not in res.mounts:
        res.mounts.append(mount)
    return repo.target


_ENV_WRAPPED = False


def register_resolvers() -> None:
    """Register `art` and `auto_mount`, and wrap `oc.env`, with OmegaConf (idempotent)."""
    global _ENV_WRAPPED
    if not _ENV_WRAPPED:
        OmegaConf.register_resolver("oc.env", _env, replace=True, annotation_validation="off")
        _ENV_WRAPPED = True
    if not OmegaConf.has_resolver("art"):
        OmegaConf.register_resolver("art", _art, use_cache=False, annotation_validation="off")
    if not OmegaConf.has_resolver("auto_mount"):
        OmegaConf.register_resolver("auto_mount", _auto_mount, use_cache=False, annotation_validation="off")
