"""nemotron_core: the toolkit behind the `nemotron` CLI, the Prefect tasks and the flows.

Utilities, not a framework: runspec parsing, the config pipeline, env.toml profiles,
executors, the artifact registry and display helpers. Importing this package does no
work (no file reads, no heavy imports), so `nemotron --help` stays instant.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `from nemotron_core import parse` as the seed's `from nemo_runspec import parse`; loaded on first use.
    if name == "parse":
        from nemotron_core.runspec import parse  # lazy: importing the package does no work

        return parse
    raise AttributeError(f"module 'nemotron_core' has no attribute {name!r}")
