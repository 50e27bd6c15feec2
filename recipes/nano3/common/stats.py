"""Adding up per-shard stats into per-source and total stats (for RESULT.json)."""

from __future__ import annotations

from .errors import DataError
from .splits import SPLITS


def by_source(sources: dict, jobs: list[dict], stats: list[dict], keys: tuple[str, ...], noun: str) -> dict:
    """{source: {key: {split: n}, skipped, skipped_examples}}; DataError for a source with no `keys[0]`."""
    out = {}
    for name in sources:
        mine = [s for j, s in zip(jobs, stats) if j["source"] == name]
        entry = {k: {sp: sum(s[k][sp] for s in mine) for sp in SPLITS} for k in keys}
        entry.update(skipped=sum(s["skipped"] for s in mine), empty=sum(s.get("empty", 0) for s in mine),
                     skipped_examples=[e for s in mine for e in s["skipped_examples"]][:5])
        if sum(entry[keys[0]].values()) == 0:
            raise DataError(f"source '{name}': no usable {noun} ({entry['skipped']} skipped, {entry['empty']} empty); "
                            f"check sources.{name} and its input")
        out[name] = entry
    return out


def totals(per_source: dict, keys: tuple[str, ...]) -> dict:
    """{key: {split: n}} over all sources, plus the skipped count."""
    out = {k: {sp: sum(s[k][sp] for s in per_source.values()) for sp in SPLITS} for k in keys}
    out["skipped"] = sum(s["skipped"] for s in per_source.values())
    return out
