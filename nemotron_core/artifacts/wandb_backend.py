"""The registry on W&B Artifacts (wandb 0.31), same API as the fsspec backend.

    [artifacts]
    backend = "wandb"
    project = "nano3"            # required (or $WANDB_PROJECT)
    entity = "my-team"           # optional (or $WANDB_ENTITY / the key's default entity)
    mode = "online"              # optional; default: online when $WANDB_API_KEY is set, else offline

Mapping: a name is a W&B artifact collection (type "dataset" for *-data, "model" for
*-model, "eval" otherwise); versions keep W&B's own numbers (W&B starts at v0, the
fsspec backend at v1) so a ref means what the W&B UI shows; aliases are W&B aliases, and W&B maintains `latest` itself. Publish runs a short W&B run (job type
`publish-<name>`) that `use_artifact`s each lineage input and `log_artifact`s the folder,
so lineage also shows up in the W&B UI; the pinned lineage refs and the producer
metadata are also kept in the artifact metadata under "nemotron". W&B commits an artifact
version server-side in one step (atomic publish) and gives concurrent loggers distinct
versions. The digest is W&B's own manifest digest ("wandb:<hex>"); file hashes are
W&B's md5 entries. cache_key_part reads the digest from the version's metadata (one API
call, no manifest download, no file bytes).

What offline mode (WANDB_MODE=offline, no key) can and cannot do - checked against
wandb 0.31, not assumed:
  * can: build the artifact and its manifest locally, compute W&B's digest, and log it
    into the offline run (`<WANDB_DIR>/wandb/offline-run-*/run-*.wandb`, files copied to
    `$WANDB_DATA_DIR/artifacts/staging`) so that `wandb sync` uploads it later, with
    its aliases, metadata and the run's lineage.
  * cannot: know the version number (the server assigns it at sync: `Artifact.version`
    raises ArtifactNotLoggedError offline), read anything back (`run.use_artifact` raises
    "Cannot use artifact when in offline mode", `wandb.Api` needs a key and the network),
    so no resolve/list/show/lineage/alias/verify/gc, and lineage refs cannot be
    resolved (only already pinned "name:vN" refs are accepted).
  Offline `publish` therefore returns a *pending* ArtifactVersion (`version=None`,
  `ref="NAME:pending"`), and every read raises ArtifactError saying so. Nothing is faked:
  for an offline pipeline use a file:// or s3:// root.

The online paths use only public wandb.Api / wandb.Artifact calls; they cannot be
exercised here (no network), which the tests state where they skip.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import struct
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from nemotron_core.errors import ArtifactError
from nemotron_core.paths import state_dir

from .model import ArtifactFile, ArtifactVersion
from .pathcheck import check_rel_path
from .refs import LATEST, Ref, check_alias, check_name, parse_ref
from .registry import DEFAULT_STAGING_GRACE_S, ArtifactRegistry, GcReport, Source
from .transfer import open_source

OFFLINE_REASON = (
    "W&B offline mode cannot read artifacts back (wandb 0.31: use_artifact raises 'Cannot use artifact when "
    "in offline mode' and wandb.Api needs an API key and the network; version numbers are assigned at "
    "`wandb sync`)"
)


def artifact_type(name: str) -> str:
    if name.endswith("-data"):
        return "dataset"
    if name.endswith("-model"):
        return "model"
    return "eval"


def _wandb_env() -> None:
    """Keep wandb's run dirs, caches and staging under the state folder, never $HOME."""
    base = state_dir()
    for key, sub in (("WANDB_DIR", "wandb"), ("WANDB_CACHE_DIR", "cache/wandb"),
                     ("WANDB_CONFIG_DIR", "cache/wandb-config"), ("WANDB_DATA_DIR", "cache/wandb-data"),
                     ("WANDB_ARTIFACT_DIR", "cache/wandb-artifacts")):
        if not os.environ.get(key):
            path = base / sub
            path.mkdir(parents=True, exist_ok=True)
            os.environ[key] = str(path)


class WandbRegistry(ArtifactRegistry):
    backend = "wandb"

    def __init__(self, cfg: Mapping[str, Any]):
        self.project = cfg.get("project") or os.environ.get("WANDB_PROJECT")
        if not self.project:
            raise ArtifactError("[artifacts] backend = \"wandb\" needs project = \"...\" (or $WANDB_PROJECT)")
        self.entity = cfg.get("entity") or os.environ.get("WANDB_ENTITY") or None
        key_env = cfg.get("api_key_env", "WANDB_API_KEY")
        mode = cfg.get("mode") or os.environ.get("WANDB_MODE") or ("online" if os.environ.get(key_env) else "offline")
        if mode not in ("online", "offline", "dryrun"):
            raise ArtifactError(f"[artifacts] mode = {mode!r}: use online or offline")
        self.offline = mode != "online"
        self.api_key = os.environ.get(key_env) or None
        where = f"{self.entity}/{self.project}" if self.entity else self.project
        self.root_uri = f"wandb://{where}" + (" (offline)" if self.offline else "")
        self._api_obj: Any = None

    def __repr__(self) -> str:
        return f"WandbRegistry({self.root_uri!r})"

    # ------------------------------------------------------------------ helpers

    def _need_online(self, what: str) -> None:
        if self.offline:
            raise ArtifactError(f"{what}: {OFFLINE_REASON}; run `wandb sync` and use mode = \"online\", "
                                f"or use a file:// or s3:// [artifacts] root")

    def _api(self) -> Any:
        if self._api_obj is None:
            _wandb_env()
            import wandb  # lazy: wandb is a heavy import

            overrides = {"project": self.project, **({"entity": self.entity} if self.entity else {})}
            try:
                self._api_obj = wandb.Api(overrides=overrides, api_key=self.api_key)
            except Exception as exc:  # noqa: BLE001 - wandb raises several types here
                raise ArtifactError(f"cannot reach W&B for {self.root_uri}: {exc}; check the API key "
                                    f"(WANDB_API_KEY) and the network") from None
        return self._api_obj

    def _q(self, name: str, selector: str) -> str:
        prefix = f"{self.entity}/{self.project}" if self.entity else self.project
        return f"{prefix}/{name}:{selector}"

    @staticmethod
    def _wb_selector(r: Ref) -> str:
        return f"v{r.version}" if r.version is not None else (r.alias or LATEST)

    def _fetch(self, r: Ref) -> Any:
        self._need_online(f"resolve {r}")
        try:
            return self._api().artifact(self._q(r.name, self._wb_selector(r)))
        except ArtifactError:
            raise
        except Exception as exc:  # noqa: BLE001 - wandb.errors.CommError and friends
            raise ArtifactError(f"artifact {r} not found in {self.root_uri} ({str(exc).splitlines()[0][:160]}); "
                                f"check the name/version/alias with `nemotron artifacts list`") from None

    def _to_version(self, art: Any, *, with_files: bool = True) -> ArtifactVersion:
        name = art.source_name.split(":", 1)[0] if getattr(art, "source_name", None) else art.name.split(":", 1)[0]
        version = int(str(art.version).lstrip("v"))
        meta = dict(art.metadata or {})
        nemo = meta.pop("nemotron", {}) if isinstance(meta.get("nemotron"), dict) else {}
        files: tuple[ArtifactFile, ...] = ()
        if with_files:
            files = tuple(sorted(
                (ArtifactFile(check_rel_path(path, f"W&B manifest of {name}"), int(entry.size or 0),
                              f"md5:{entry.digest}")
                 for path, entry in art.manifest.entries.items()),
                key=lambda f: f.path,
            ))
        created = None
        with contextlib.suppress(Exception):
            created = dt.datetime.fromisoformat(str(art.created_at).replace("Z", "+00:00"))
        uri = f"wandb-artifact://{self._q(name, f'v{version}')}"
        return ArtifactVersion(
            name=name, version=version, digest=f"wandb:{art.digest}", uri=uri, local_path=None,
            metadata=meta, lineage=tuple(nemo.get("lineage", ())), files=files, created=created,
            aliases=tuple(a for a in art.aliases), backend="wandb",
        )

    # ------------------------------------------------------------------ publishing

    def pin_lineage(self, lineage: Iterable[str | ArtifactVersion]) -> tuple[str, ...]:
        """Offline, W&B cannot resolve aliases: lineage must come pinned (NAME:vN)."""
        if not self.offline:
            return super().pin_lineage(lineage)
        items = [lineage] if isinstance(lineage, (str, ArtifactVersion)) else list(lineage)
        pinned: list[str] = []
        for item in items:
            ref = item.ref if isinstance(item, ArtifactVersion) else item
            if parse_ref(ref).version is None:
                raise ArtifactError(f"publish: lineage ref {ref!r} must be pinned (NAME:vN) in W&B offline mode, "
                                    f"which cannot resolve aliases")
            pinned.append(ref)
        return tuple(pinned)

    def _publish(self, name: str, source_dir: Source, *, metadata: dict[str, Any], lineage: tuple[str, ...],
                 aliases: list[str], move: bool) -> ArtifactVersion:
        meta, pinned_t, user_aliases = metadata, lineage, aliases
        src = open_source(source_dir)
        if src.local is None:
            raise ArtifactError(f"publish {name}: the W&B backend publishes local folders; copy {src.display} "
                                f"locally first or use an s3:// [artifacts] root")
        _wandb_env()
        import wandb  # lazy: wandb is a heavy import

        # immutable = no staging copy; only safe when W&B uploads before we delete the source (online)
        policy: Literal["immutable", "mutable"] = "immutable" if move and not self.offline else "mutable"
        nemo = {"lineage": list(pinned_t), "source": src.display}
        try:
            run = wandb.init(project=self.project, entity=self.entity, job_type=f"publish-{name}",
                             mode="offline" if self.offline else "online", reinit="create_new",
                             settings=wandb.Settings(silent=True, console="off", save_code=False))
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(f"publish {name}: cannot start a W&B run in {self.root_uri}: {exc}") from None
        try:
            if not self.offline:
                for ref in pinned_t:
                    r = parse_ref(ref)
                    run.use_artifact(self._q(r.name, self._wb_selector(r)))
            art = wandb.Artifact(name, type=artifact_type(name), metadata={**meta, "nemotron": nemo})
            if src.single_file:
                art.add_file(str(src.local), name=src.local.name, policy=policy)
            else:
                art.add_dir(str(src.local), policy=policy)
            run.log_artifact(art, aliases=[LATEST, *user_aliases])
            if self.offline:
                run_dir = Path(run.dir).parent  # .../offline-run-*/files -> the run folder
                result = ArtifactVersion(
                    name=name, version=None, digest=f"wandb:{art.digest}",
                    uri=f"wandb-offline://{run_dir}", local_path=None, metadata=meta, lineage=pinned_t,
                    files=tuple(sorted((ArtifactFile(p, int(e.size or 0), f"md5:{e.digest}")
                                        for p, e in art.manifest.entries.items()), key=lambda f: f.path)),
                    created=dt.datetime.now(dt.timezone.utc), aliases=(LATEST, *user_aliases), backend="wandb",
                )
            else:
                art.wait()
                result = self._to_version(art)
        finally:
            run.finish()
        if self.offline:
            _wait_offline_logged(run_dir, art.digest, name)
        if move:
            src.remove()
        return result

    # ------------------------------------------------------------------ reading

    def resolve(self, ref: str | Ref) -> ArtifactVersion:
        r = ref if isinstance(ref, Ref) else parse_ref(ref)
        return self._to_version(self._fetch(r))

    def load(self, name: str, version: int) -> ArtifactVersion:
        return self.resolve(Ref(check_name(name), version=version))

    def cache_key_part(self, ref: str) -> str:
        r = parse_ref(ref)
        v = self._to_version(self._fetch(r), with_files=False)  # no manifest download
        return f"{v.ref}@{v.digest}"

    def _collection_versions(self, name: str) -> list[Any]:
        self._need_online(f"list {name}")
        latest = self._fetch(Ref(check_name(name), alias=LATEST))
        try:
            return list(self._api().artifacts(latest.type, self._q(name, "x").rsplit(":", 1)[0]))
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(f"cannot list versions of {name} in {self.root_uri}: {exc}") from None

    def names(self) -> list[str]:
        self._need_online("list artifacts")
        prefix = f"{self.entity}/{self.project}" if self.entity else self.project
        try:
            return sorted({c.name for t in self._api().artifact_types(project=prefix) for c in t.collections()})
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(f"cannot list artifacts in {self.root_uri}: {exc}") from None

    def live_versions(self, name: str) -> list[int]:
        try:
            return sorted(int(str(a.version).lstrip("v")) for a in self._collection_versions(name))
        except ArtifactError:
            if self.offline:
                raise
            return []

    def aliases(self, name: str) -> dict[str, int]:
        table: dict[str, int] = {}
        for a in self._collection_versions(name):
            for alias in a.aliases:
                table[alias] = int(str(a.version).lstrip("v"))
        return table

    def set_alias(self, ref: str, alias: str) -> ArtifactVersion:
        check_alias(alias)
        art = self._fetch(parse_ref(ref))
        if alias not in art.aliases:
            art.aliases.append(alias)  # W&B moves it off any other version of the collection
            art.save()
        return self._to_version(art, with_files=False)

    def remove_alias(self, name: str, alias: str) -> None:
        check_alias(alias)
        art = self._fetch(Ref(check_name(name), alias=alias))
        art.aliases.remove(alias)
        art.save()

    def local_copy(self, ref: str) -> Path:
        art = self._fetch(parse_ref(ref))
        v = self._to_version(art, with_files=False)
        dest = state_dir() / "cache" / "artifacts" / v.name / f"v{v.version}-{v.digest.split(':', 1)[1][:12]}"
        if dest.is_dir():
            return dest
        _check_manifest_paths(art, v.ref)
        tmp = dest.with_name(f"{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            art.download(root=str(tmp))
            try:
                art.verify(root=str(tmp))
            except ValueError as exc:
                raise ArtifactError(f"download of {v.ref}: {exc}; retry") from None
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def verify(self, ref: str) -> ArtifactVersion:
        art = self._fetch(parse_ref(ref))
        _check_manifest_paths(art, str(parse_ref(ref)))
        root = state_dir() / "cache" / "wandb-verify" / uuid.uuid4().hex
        try:
            art.download(root=str(root))
            try:
                art.verify(root=str(root))
            except ValueError as exc:
                raise ArtifactError(f"verify {parse_ref(ref)}: {exc}; re-publish the artifact") from None
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return self._to_version(art)

    def gc(self, *, dry_run: bool = False, staging_grace_s: float = DEFAULT_STAGING_GRACE_S,
           keep: Iterable[str] = ()) -> GcReport:
        """Delete W&B versions that have no alias and no kept version lists them as lineage.
        Staging: W&B commits versions server-side, so there is none on our side to remove."""
        self._need_online("gc")
        report = GcReport(dry_run=dry_run)
        arts: dict[tuple[str, int], Any] = {}
        for name in self.names():
            for a in self._collection_versions(name):
                arts[(name, int(str(a.version).lstrip("v")))] = a
        roots = [k for k, a in arts.items() if a.aliases]
        for ref in keep:
            r = self.resolve(ref)
            roots.append((r.name, r.version))  # type: ignore[arg-type]
        marked: set[tuple[str, int]] = set()
        while roots:
            node = roots.pop()
            if node in marked or node not in arts:
                continue
            marked.add(node)
            nemo = (arts[node].metadata or {}).get("nemotron", {})
            for parent in nemo.get("lineage", ()) if isinstance(nemo, dict) else ():
                with contextlib.suppress(ArtifactError):
                    pr = parse_ref(parent)
                    if pr.version is not None:
                        roots.append((pr.name, pr.version))
        for key, a in sorted(arts.items()):
            ref = f"{key[0]}:v{key[1]}"
            if key in marked:
                report.kept_versions.append(ref)
            else:
                report.deleted_versions.append(ref)
                if not dry_run:
                    a.delete()
        return report


def _check_manifest_paths(art: Any, ref: str) -> None:
    """A W&B manifest is written by whoever logged the artifact: its paths must stay below the
    download folder before anything is downloaded."""
    for path in art.manifest.entries:
        check_rel_path(path, f"W&B manifest of {ref}")


# ------------------------------------------------------------------ the offline run log

_LOG_BLOCK = 32768
_LOG_HEADER = 7


def offline_log_records(path: Path) -> list[bytes]:
    """Raw records of an offline run's `run-*.wandb` file: a 7-byte ':W&B' file header,
    then LevelDB-log blocks of 32 KiB made of chunks (crc32c u32, length u16, type u8;
    FULL=1, FIRST=2, MIDDLE=3, LAST=4). wandb 0.31 has no Python reader for it any more."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        return []
    out, pending, pos = [], b"", _LOG_HEADER
    while pos + _LOG_HEADER <= len(data):
        left = _LOG_BLOCK - pos % _LOG_BLOCK
        if left < _LOG_HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + _LOG_HEADER])
        if kind == 0 and length == 0:  # zero padding up to the next block
            pos += left
            continue
        chunk = data[pos + _LOG_HEADER:pos + _LOG_HEADER + length]
        if len(chunk) < length:
            break  # a chunk still being written
        pos += _LOG_HEADER + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
            pending = b""
    return out


def offline_artifacts(run_dir: Path) -> list[Any]:
    """The ArtifactRecord protos logged into one offline run (what `wandb sync` uploads)."""
    from wandb.proto import wandb_internal_pb2 as pb  # lazy: wandb.proto is a heavy import

    found = []
    for f in sorted(Path(run_dir).glob("run-*.wandb")):
        for raw in offline_log_records(f):
            rec = pb.Record()  # type: ignore[attr-defined]  # generated protobuf module, no stubs
            try:
                rec.ParseFromString(raw)
            except Exception:  # noqa: BLE001 - a torn tail record
                continue
            if rec.WhichOneof("record_type") == "artifact":
                found.append(rec.artifact)
    return found


def _wait_offline_logged(run_dir: Path, digest: str, name: str, timeout_s: float = 60.0) -> None:
    """run.finish() can return before wandb-core has flushed the offline log to disk
    (seen with wandb 0.31: a 7-byte file right after finish). Publish returns only once
    the artifact record is really in the log that `wandb sync` will read."""
    deadline = time.monotonic() + timeout_s
    while True:
        if any(a.digest == digest for a in offline_artifacts(run_dir)):
            return
        if time.monotonic() > deadline:
            raise ArtifactError(f"publish {name}: W&B did not write the artifact into the offline run "
                                f"{run_dir} within {timeout_s:.0f} s; check {run_dir}/logs/debug-internal.log")
        time.sleep(0.05)
