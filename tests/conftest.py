"""Shared pytest setup: every test run keeps its state in a private folder.

Fixture modules live in tests/fixtures/ and are loaded here as plugins.
"""

from __future__ import annotations

import os
from pathlib import Path

pytest_plugins = [
    "tests.fixtures.state",
    "tests.fixtures.services",
    "tests.fixtures.artifacts",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
