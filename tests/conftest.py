"""Shared pytest setup: every test run keeps its state in a private folder.

Fixture modules live in tests/fixtures/ and are loaded here as plugins.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

pytest_plugins = [
    "tests.fixtures.state",
    "tests.fixtures.services",
    "tests.fixtures.artifacts",
    "tests.fixtures.docker",
    "tests.fixtures.sshd",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---- one loud line when services could not start --------------------------------------------
# Outside CI a service that fails to start turns the tests needing it into skips (see
# tests/fixtures/services.py). Forty skips scroll past unnoticed in the summary, so the run ends
# with one line naming each service that was down and how many tests that cost.
_SERVICE_SKIP = re.compile(r"scripts/(?P<service>[\w-]+) start failed: (?P<why>.*)")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    skipped: dict[str, list[str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        if match := _SERVICE_SKIP.search(_skip_reason(report)):
            skipped.setdefault(match["service"], []).append(match["why"])
    if not skipped:
        return
    parts = [f"{name} ({len(whys)} test{'s' if len(whys) != 1 else ''} skipped: {whys[0][:120]})"
             for name, whys in sorted(skipped.items())]
    total = sum(len(whys) for whys in skipped.values())
    terminalreporter.write_line(
        f"SERVICES DOWN, {total} tests skipped: " + "; ".join(parts)
        + " -- fix the cause, or run with CI=true to turn these skips into failures",
        red=True, bold=True)
