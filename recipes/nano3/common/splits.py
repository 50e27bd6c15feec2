"""Deterministic train/valid/test assignment by hashing an item's key.

The same key always lands in the same split, whatever the shard, worker or run, so a
held-out item never appears in training data of any stage that uses the same salt.
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "valid", "test")


def unit_hash(key: str, salt: str = "") -> float:
    """A uniform number in [0, 1) from sha256(salt:key)."""
    h = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_of(key: str, valid: float, test: float, salt: str = "") -> str:
    """'valid' for the first `valid` fraction of the hash range, then 'test', else 'train'."""
    u = unit_hash(key, salt)
    if u < valid:
        return "valid"
    if u < valid + test:
        return "test"
    return "train"


def split_counts(total: int, fractions: dict) -> dict[str, int]:
    """How many of `total` generated items go to each split (valid/test fractions, rest train)."""
    valid, test = round(total * fractions["valid"]), round(total * fractions["test"])
    return {"train": total - valid - test, "valid": valid, "test": test}


def share(n: int, k: int, parts: int) -> int:
    """Part k of n split into `parts` near-equal integer parts (they add up to n)."""
    return n * (k + 1) // parts - n * k // parts
