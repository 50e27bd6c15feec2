"""Reliability: 1,000 fuzzed bad inputs end in one-line project errors, with no partial artifact.

    .venv/bin/python benchmarks/fuzz_inputs.py [--count 1000] [--seed 1000] [-v]

The cases are tests/reliability/fuzzing.py's (runspec headers, env.toml files, CLI dotlists,
trainer configs, corrupted bin/idx and Parquet data, user JSONL/Parquet/text for data prep,
`data|model import` on wrong layouts, artifact refs), round-robin over the 9 categories, run
in this process against a scratch registry under <state>/bench/reliability/fuzz. CI runs 180
of them (tests/reliability/test_fuzz_inputs.py). Last line: "N inputs, T tracebacks, P partial
artifacts, A accepted" (goal: 0, 0, 0).
"""

from __future__ import annotations

import argparse
import shutil
import time

from _reliability_data import data, load

from nemotron_core.paths import state_dir
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

    def show(case, outcome):
        if args.verbose:
            print(f"{case.category:14s} {case.label[:60]:60s} -> {outcome.kind}: {outcome.detail[:150]}", flush=True)

    start = time.perf_counter()
    tally = Fuzzer(work / "cases", work / "state", pretrain, sft, seed=args.seed).run(args.count, show)
    took = time.perf_counter() - start
    for line in tally.bad + tally.partial:
        print("FAILED", line[:400])
    print(f"per category: {dict(tally.per_category)}")
    print(f"{took:.1f} s ({took / args.count * 1000:.1f} ms per input); {load()}")
    shutil.rmtree(work, ignore_errors=True)
    print(tally.line())


if __name__ == "__main__":
    main()
