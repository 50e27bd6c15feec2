"""Reliability: 1,000 fuzzed bad and hostile inputs: one-line errors, no traceback, nothing left behind.

    .venv/bin/python benchmarks/fuzz_inputs.py [--count 1000] [--seed 1000] [-v]

The cases are tests/reliability/fuzzing.py's, round-robin over 16 kinds: runspec headers,
env.toml files, CLI dotlists, trainer configs, corrupted bin/idx and Parquet data, user
JSONL/Parquet/text for data prep, `data|model import` on wrong layouts, artifact refs, and the
hostile classes of issue 18 (fuzzing_hostile.py): shell metacharacters per profile field,
secret sources and forms, crafted registry records, symlinked import sources, YAML bombs, wrong
env.toml types and typos, `--dry-run` anywhere in any command. They run in this process against
a scratch state under <state>/bench/reliability/fuzz. CI runs 240 of them
(tests/reliability/test_fuzz_inputs.py). Last line: "N inputs, T tracebacks, P partial
artifacts, A accepted, M marker files, S secret hits, D dry-run changes" (goal: 0 for all but N).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections import defaultdict

from _reliability_data import data, load

from nemotron_core.paths import state_dir
from nemotron_core.secrets import is_secret_name
from tests.reliability.fuzzing import Fuzzer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case and its error line")
    args = parser.parse_args()
    pretrain, sft = data("pretrain"), data("sft")
    work = state_dir() / "bench" / "reliability" / "fuzz"
    shutil.rmtree(work, ignore_errors=True)
    for name in [n for n in os.environ if is_secret_name(n)]:  # the cases choose their own secrets
        del os.environ[name]

    def show(case, outcome):
        if args.verbose:
            print(f"{case.category:16s} {case.label[:70]!s:70s} -> {outcome.kind}: {outcome.detail[:150]!r}", flush=True)

    start = time.perf_counter()
    tally = Fuzzer(work / "cases", work / "state", pretrain, sft, seed=args.seed).run(args.count, show)
    took = time.perf_counter() - start
    for line in tally.failures:
        print("FAILED", line[:400])
    kinds: dict[str, dict[str, int]] = defaultdict(dict)
    for (category, kind), n in sorted(tally.by_kind.items()):
        kinds[category][kind] = n
    for category, n in tally.per_category.items():
        slowest, label = tally.slowest[category]
        print(f"{category:16s} {n:4d} cases {dict(kinds[category])}; {tally.seconds[category] / n * 1000:7.1f} ms "
              f"per case, slowest {slowest:.2f} s ({label[:60]})")
    print(f"{took:.1f} s ({took / args.count * 1000:.1f} ms per input); {load()}")
    shutil.rmtree(work, ignore_errors=True)
    print(tally.line())


if __name__ == "__main__":
    main()
