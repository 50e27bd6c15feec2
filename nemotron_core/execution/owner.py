"""Who submitted a job: the Prefect server that tracks its flow run, and the user.

A Slurm cluster is shared: other users, and other Prefect servers of the same user (a
test's, a second checkout's), submit nemotron jobs there too. The orphan sweeper cancels
a job when *its* server says the flow run is over; asked about a flow run it never saw,
another server says "unknown", which must not mean "dead". So every job's comment
carries `server=<id>;user=<name>`, and the sweeper only looks at jobs whose tags are both
its own (sweeper.py).

The server id is a short hash of where the Prefect API lives: PREFECT_API_URL (a loopback
host made unique by this machine's name), or, with no API URL (Prefect's ephemeral
server), this machine and PREFECT_HOME (the database lives there). Both are read from the
environment only: the toolkit knows nothing of Prefect. A flow whose API URL comes from a
Prefect profile file puts it into the environment first (tasks/prefect_env.py).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import socket
from urllib.parse import urlsplit

_LOOPBACK = ("127.", "localhost", "::1", "0.0.0.0")


def _api_url() -> str:
    return os.environ.get("PREFECT_API_URL", "")


def _prefect_home() -> str:
    return os.environ.get("PREFECT_HOME", "") or os.path.expanduser("~/.prefect")


def server_identity() -> str:
    """12 hex digits naming the Prefect server this process reports flow runs to."""
    url = _api_url().rstrip("/")
    host = socket.gethostname()
    if url:
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        where = f"{host}|{url}" if hostname.startswith(_LOOPBACK) or hostname in _LOOPBACK else url
    else:
        where = f"{host}|ephemeral|{os.path.realpath(_prefect_home())}"
    return hashlib.sha256(where.encode()).hexdigest()[:12]


def current_user() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        name = str(os.getuid())
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
