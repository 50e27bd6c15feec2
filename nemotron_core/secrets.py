"""What counts as a secret, and how it is kept out of everything written.

A name matching KEY / TOKEN / SECRET / PASSWORD (any case) is a secret: its value is
redacted in job.yaml, displays and Prefect parameters. Keys ending in `_env` hold the
*name* of an environment variable (`api_key_env = "WANDB_API_KEY"`), not a secret.
Secret values reach jobs only through a 0600 env file (execution layer).
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***REDACTED***"
_SECRET = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_REFERENCE_SUFFIXES = ("_env", "_var", "_env_var")


def is_secret_name(name: str) -> bool:
    name = str(name)
    return bool(_SECRET.search(name)) and not name.lower().endswith(_REFERENCE_SUFFIXES)


def redact(obj: Any) -> Any:
    """A copy of a nested dict/list with the values of secret-named keys replaced."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_name(k) and v not in (None, "") else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj
