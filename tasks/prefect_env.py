"""Where the Prefect API lives, in the environment, for the toolkit's job tags.

nemotron_core tags every cluster job with the Prefect server that tracks it
(nemotron_core/execution/owner.py) and reads that from PREFECT_API_URL / PREFECT_HOME in the
environment only. A worker's flow process has them there already; a flow run in a process
whose Prefect profile file (not the environment) names the server would tag jobs as the
ephemeral server's, and the server's own sweeper would then never recognise them. The
flows call `export_prefect_location()` first to close that gap.
"""

from __future__ import annotations

import os


def export_prefect_location() -> None:
    """Put Prefect's current API URL and home into os.environ when only its settings know them."""
    from prefect.settings import get_current_settings  # lazy: prefect.settings is a heavy import

    settings = get_current_settings()
    if not os.environ.get("PREFECT_API_URL") and settings.api.url:
        os.environ["PREFECT_API_URL"] = str(settings.api.url)
    if not os.environ.get("PREFECT_HOME"):
        os.environ["PREFECT_HOME"] = str(settings.home)
