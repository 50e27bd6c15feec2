"""nemotron_core: the toolkit behind the `nemotron` CLI, the Prefect tasks and the flows.

Utilities, not a framework: runspec parsing, the config pipeline, env.toml profiles,
executors, the artifact registry and display helpers. Importing this package does no
work (no file reads, no heavy imports), so `nemotron --help` stays instant.
"""

__version__ = "0.1.0"
