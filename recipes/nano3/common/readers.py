"""User data sources: JSONL, Parquet or text files by fsspec URI, or a local HF datasets folder.

A source in a data-prep config:

    sources:
      web:
        uri: s3://bucket/web/*.jsonl     # a file, a glob, a folder, or a list of them
        format: auto                     # jsonl | parquet | text | hf (auto: from the extension)
        weight: 0.7                      # blend weight
        num_shards: 64                   # how many Ray tasks read it
        storage_options: {}              # passed to fsspec (e.g. endpoint_url for S3)

`normalize_sources` checks the mapping; `resolve` expands the URIs (clear errors for a
missing file, an unknown format or an empty input); `plan` cuts the input into
`num_shards` pieces without reading it all (byte ranges aligned to line starts for
JSONL/text, row ranges for Parquet/HF); `read` streams `(location, record)` for one
shard, where `str(location)` is `file:line` (or `file row N`, 0-based) for error
messages. `OnError` applies `on_error: raise | skip`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from nemotron_core.errors import ConfigError, did_you_mean, one_of

from .errors import DataError

FORMATS = ("jsonl", "parquet", "text", "hf")
EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
              ".txt": "text", ".text": "text"}
LINE_FORMATS = ("jsonl", "text")
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


# ---- on_error -------------------------------------------------------------------------------
@dataclass
class OnError:
    """`raise`: stop at the first bad record, naming file:line; `skip`: count it and go on."""

    mode: str = "raise"
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def bad(self, loc, reason: str) -> None:
        if self.mode == "raise":
            raise DataError(f"{loc}: {reason}; fix the input or set on_error: skip")
        self.skipped += 1
        if len(self.examples) < 5:
            self.examples.append(f"{loc}: {reason}")


# ---- config: the `sources` mapping ----------------------------------------------------------
_FILE_KEYS = {"uri": None, "format": "auto", "storage_options": {}, "split": "train"}


def normalize_sources(raw, *, num_shards: int, synthetic: dict, files: dict) -> dict[str, dict]:
    """Check `sources` (name -> settings) and fill defaults; ConfigError naming the bad key.

    `synthetic` / `files`: the stage's extra keys (with defaults) for each source type.
    Every source gets `name`, `type` (synthetic | files), `weight` and `num_shards`.
    """
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("config key 'sources': needs at least one source (e.g. sources.synthetic.type=synthetic)")
    out = {}
    for name, src in raw.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(name)):
            raise ConfigError(f"config key 'sources.{name}': a source name may only use letters, digits, '_', '-', '.'")
        src = dict(src or {})
        kind = src.pop("type", "files" if "uri" in src else "synthetic")
        if kind not in ("synthetic", "files"):
            raise ConfigError(f"config key 'sources.{name}.type': '{kind}' is not one of files | synthetic"
                              f"{did_you_mean(kind, ('files', 'synthetic'))}")
        defaults = {"weight": 1.0, "num_shards": num_shards,
                    **(synthetic if kind == "synthetic" else {**_FILE_KEYS, **files})}
        for key in src:
            if key not in defaults:
                raise ConfigError(f"unknown config key 'sources.{name}.{key}'{did_you_mean(key, defaults)}; "
                                  f"known for type {kind}: type | {one_of(defaults)}")
        s = {**defaults, **src, "type": kind, "name": name}
        w = s["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w <= 0:
            raise ConfigError(f"config key 'sources.{name}.weight': '{w}' must be a number > 0")
        n = s["num_shards"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"config key 'sources.{name}.num_shards': '{n}' must be a positive integer")
        out[name] = s
    return out


# ---- resolving URIs -------------------------------------------------------------------------
def _fs(uri: str, storage_options: dict | None):
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri, **(storage_options or {}))
    except (ImportError, ValueError) as e:
        raise DataError(f"cannot open '{uri}': {str(e).splitlines()[0]}") from None


def _detect(name: str, path: str) -> str:
    suffixes = PurePosixPath(path).suffixes
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".xz"):
        raise DataError(f"source '{name}': compressed input '{path}' is not supported; decompress it or use Parquet")
    fmt = EXTENSIONS.get(suffixes[-1].lower() if suffixes else "")
    if fmt is None:
        raise DataError(f"source '{name}': cannot tell the format of '{path}' from its extension; "
                        f"set sources.{name}.format to one of {one_of(FORMATS)}")
    return fmt


def resolve(name: str, src: dict, allowed: tuple[str, ...] = FORMATS,
            columns: tuple[str, ...] = ()) -> tuple[str, list[dict]]:
    """(format, [{"uri", "size" and/or "rows"}]) for a source; DataError when unusable.

    `columns`: the fields a Parquet/HF input must have (checked here, before any work).
    """
    uris = src.get("uri")
    uris = [uris] if isinstance(uris, str) else list(uris or [])
    if not uris:
        raise DataError(f"source '{name}': no uri; set sources.{name}.uri to a file, glob or folder")
    fmt = src.get("format") or "auto"
    if fmt != "auto" and fmt not in FORMATS:
        raise DataError(f"source '{name}': unknown format '{fmt}'{did_you_mean(fmt, FORMATS)}; "
                        f"set sources.{name}.format to one of auto | {one_of(FORMATS)}")
    opts = src.get("storage_options") or {}
    found: list[tuple[str, str]] = []  # (uri, format)
    for uri in uris:
        fs, path = _fs(uri, opts)
        if any(c in path for c in "*?["):
            matches = sorted(p for p in fs.glob(path) if fs.isfile(p))
            if not matches:
                raise DataError(f"source '{name}': no file matches '{uri}'; check sources.{name}.uri")
        elif fs.isdir(path):
            if fmt == "hf" or (fmt == "auto" and any(fs.exists(f"{path}/{m}") for m in _HF_MARKERS)):
                found.append((uri, "hf"))
                continue
            matches = sorted(p for p in fs.find(path) if not PurePosixPath(p).name.startswith((".", "_")))
            if fmt == "auto":
                matches = [p for p in matches if PurePosixPath(p).suffix.lower() in EXTENSIONS]
            if not matches:
                raise DataError(f"source '{name}': folder '{uri}' holds no data files; check sources.{name}.uri")
        elif fs.isfile(path):
            matches = [path]
        else:
            raise DataError(f"source '{name}': no such file or folder '{uri}'; check sources.{name}.uri")
        for p in matches:
            found.append((fs.unstrip_protocol(p) if "://" in uri else p, fmt if fmt != "auto" else _detect(name, p)))
    formats = sorted({f for _, f in found})
    if len(formats) > 1:
        raise DataError(f"source '{name}': mixed formats ({', '.join(formats)}); split it into one source per format")
    fmt = formats[0]
    if fmt not in allowed:
        raise DataError(f"source '{name}': format '{fmt}' is not usable here; use {one_of(allowed)}")
    files = []
    for uri, _ in found:
        fs, path = _fs(uri, opts)
        if fmt in LINE_FORMATS:
            files.append({"uri": uri, "size": int(fs.size(path))})
        elif fmt == "parquet":
            files.append({"uri": uri, "size": int(fs.size(path)), "rows": _parquet_rows(uri, opts, columns)})
        else:
            files.append({"uri": uri, "rows": len(_hf_dataset(name, uri, src, columns))})
    if sum(f.get("rows", f.get("size", 0)) for f in files) == 0:
        raise DataError(f"source '{name}': input is empty ({', '.join(f['uri'] for f in files)}); "
                        f"point sources.{name}.uri at data")
    return fmt, files


def _parquet_rows(uri: str, opts: dict, columns: tuple[str, ...]) -> int:
    import pyarrow.parquet as pq

    fs, path = _fs(uri, opts)
    try:
        with fs.open(path, "rb") as f:
            meta = pq.ParquetFile(f).metadata
            names = meta.schema.names
    except Exception as e:
        raise DataError(f"{uri}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    for col in columns:
        if col not in names:
            raise DataError(f"{uri}: no column '{col}' (columns: {', '.join(names)}){did_you_mean(col, names)}; "
                            f"set the source's key option")
    return meta.num_rows


def _hf_dataset(name: str, uri: str, src: dict, columns: tuple[str, ...] = ()):
    import datasets

    try:
        ds = datasets.load_from_disk(uri)
    except Exception as e:
        raise DataError(f"source '{name}': '{uri}' is not a datasets folder ({str(e).splitlines()[0]})") from None
    if isinstance(ds, datasets.DatasetDict):
        split = src.get("split") or "train"
        if split not in ds:
            raise DataError(f"source '{name}': '{uri}' has no split '{split}' (splits: {one_of(ds)}); "
                            f"set sources.{name}.split")
        ds = ds[split]
    for col in columns:
        if col not in ds.column_names:
            raise DataError(f"{uri}: no column '{col}' (columns: {', '.join(ds.column_names)})"
                            f"{did_you_mean(col, ds.column_names)}; set the source's key option")
    return ds


# ---- planning shards ------------------------------------------------------------------------
def plan(fmt: str, files: list[dict], num_shards: int, storage_options: dict | None = None) -> list[list[dict]]:
    """`num_shards` lists of pieces ({"uri", "start", "end"}: bytes or rows) covering the input once."""
    unit = "size" if fmt in LINE_FORMATS else "rows"
    total = sum(f[unit] for f in files)
    starts, acc = [], 0
    for f in files:
        starts.append(acc)
        acc += f[unit]
    cuts = [0]
    for k in range(1, num_shards):
        target = k * total // num_shards
        j = max(i for i, s in enumerate(starts) if s <= target) if target < total else len(files) - 1
        offset = target - starts[j]
        if unit == "size" and 0 < offset < files[j]["size"]:
            offset = _next_line_start(files[j]["uri"], offset, storage_options)
        cuts.append(max(cuts[-1], min(starts[j] + offset, total)))
    cuts.append(total)
    shards = []
    for lo, hi in zip(cuts, cuts[1:]):
        pieces = []
        for f, s in zip(files, starts):
            a, b = max(lo, s), min(hi, s + f[unit])
            if a < b:
                pieces.append({"uri": f["uri"], "start": a - s, "end": b - s})
        shards.append(pieces)
    return shards


def _next_line_start(uri: str, offset: int, storage_options: dict | None) -> int:
    fs, path = _fs(uri, storage_options)
    with fs.open(path, "rb") as f:
        f.seek(offset - 1)
        pos = offset - 1
        while block := f.read(1 << 16):
            i = block.find(b"\n")
            if i >= 0:
                return pos + i + 1
            pos += len(block)
    return pos


# ---- reading --------------------------------------------------------------------------------
class LineLoc:
    """`file:line` of a record, computed only when printed (counting newlines before the piece)."""

    __slots__ = ("uri", "start", "index", "opts")

    def __init__(self, uri, start, index, opts):
        self.uri, self.start, self.index, self.opts = uri, start, index, opts

    def __str__(self) -> str:
        before = 0
        if self.start:
            fs, path = _fs(self.uri, self.opts)
            with fs.open(path, "rb") as f:
                left = self.start
                while left > 0 and (block := f.read(min(left, 8 << 20))):
                    before += block.count(b"\n")
                    left -= len(block)
        return f"{self.uri}:{before + self.index + 1}"


class RowLoc:
    __slots__ = ("uri", "row")

    def __init__(self, uri, row):
        self.uri, self.row = uri, row

    def __str__(self) -> str:
        return f"{self.uri} row {self.row}"


def read(fmt: str, pieces: list[dict], src: dict, on_error: OnError, columns: tuple[str, ...] = ()):
    """Yield (location, record) for a shard: a dict (JSONL/Parquet/HF) or a str (text line)."""
    opts = src.get("storage_options") or {}
    for piece in pieces:
        uri, start, end = piece["uri"], piece["start"], piece["end"]
        if fmt in LINE_FORMATS:
            yield from _read_lines(fmt, uri, start, end, opts, on_error)
        elif fmt == "parquet":
            yield from _read_parquet(uri, start, end, columns, opts)
        else:
            ds = _hf_dataset("?", uri, src, columns)
            cols = list(columns or ds.column_names)
            batch = ds.select_columns(cols)[start:end]
            for i in range(end - start):
                yield RowLoc(uri, start + i), {c: batch[c][i] for c in cols}


def _read_lines(fmt, uri, start, end, opts, on_error):
    for i, raw in _lines(uri, start, end, opts):
        if not raw.strip():
            continue
        loc = LineLoc(uri, start, i, opts)
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            on_error.bad(loc, f"not UTF-8 ({e.reason} at byte {e.start})")
            continue
        if fmt == "text":
            yield loc, line
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            on_error.bad(loc, f"invalid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(record, dict):
            on_error.bad(loc, f"a JSON line must be an object, got {type(record).__name__}")
            continue
        yield loc, record


def _lines(uri: str, start: int, end: int, opts: dict, block: int = 8 << 20):
    """(index within the piece, raw line bytes) for bytes [start, end) of a file, streamed."""
    fs, path = _fs(uri, opts)
    i, rest = 0, b""
    with fs.open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(block, left))
            if not data:
                break
            left -= len(data)
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield i, line
                i += 1
    if rest:
        yield i, rest


def _read_parquet(uri, start, end, columns, opts):
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, path = _fs(uri, opts)
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        cols = list(columns or pf.schema_arrow.names)
        row = 0
        for g in range(pf.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if row + n > start and row < end:
                try:
                    table = pf.read_row_group(g, columns=cols)
                except (OSError, pa.ArrowException) as e:  # corrupt pages show only when read
                    raise DataError(f"{uri}: row group {g} is not readable ({str(e).splitlines()[0]}); "
                                    f"rewrite the file") from None
                a, b = max(start - row, 0), min(end - row, n)
                data = table.slice(a, b - a).to_pydict()
                for i in range(b - a):
                    yield RowLoc(uri, row + a + i), {c: data[c][i] for c in cols}
            row += n
            if row >= end:
                break


def read_all(src: dict, info: dict, on_error: OnError, columns: tuple[str, ...] = ()):
    """Stream every record of a resolved file source in order (one process; small inputs, samples)."""
    pieces = [p for shard in plan(info["fmt"], info["files"], 1, src.get("storage_options")) for p in shard]
    return read(info["fmt"], pieces, src, on_error, columns)


def fields(src: dict, *keys: str) -> tuple[str, ...]:
    """The record fields a file source must have: the values of its `*_key` settings."""
    return tuple(src[k] for k in keys) if src["type"] == "files" else ()


def resolve_source(src: dict, world_digest: str, allowed: tuple[str, ...] = FORMATS,
                   columns: tuple[str, ...] = ()) -> dict:
    """Check one normalized source now; {"fmt", "files", "public"} (public: for RESULT.json)."""
    if src["type"] == "synthetic":
        return {"public": {"type": "synthetic", "world_digest": world_digest}}
    fmt, files = resolve(src["name"], src, allowed, columns)
    public = [{k: f[k] for k in ("uri", "size", "rows") if k in f} for f in files]
    return {"fmt": fmt, "files": files, "public": {"type": "files", "format": fmt, "files": public}}
