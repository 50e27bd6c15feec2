"""A publisher process for the kill and concurrency tests.

    python -m tests.artifacts._writer CFG_JSON NAME SRC COUNT [GO_FILE]

Opens the registry (imports done), prints READY, waits for GO_FILE if given, then
publishes SRC COUNT times, printing "DONE <ref>" after each publish returns.
Each publish adds a file naming (pid, i) so every version's content is distinct.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path


def main() -> None:
    cfg, name, src, count = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    go = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    from nemotron_core.artifacts import open_registry

    reg = open_registry(cfg)
    reg.names()  # warm up the connection / filesystem
    print("READY", flush=True)
    while go is not None and not go.exists():
        time.sleep(0.005)
    for i in range(count):
        work = src.parent / f"{src.name}-{os.getpid()}-{i}"
        shutil.copytree(src, work)
        (work / "who.txt").write_text(f"{os.getpid()}-{i}\n")
        v = reg.publish(name, work, metadata={"writer": os.getpid(), "i": i})
        shutil.rmtree(work, ignore_errors=True)
        print(f"DONE {v.ref}", flush=True)


if __name__ == "__main__":
    main()
