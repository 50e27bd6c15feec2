"""Submitting to DGX Cloud or Lepton: credentials checked first, then the API reached through nemo-run.

This repository cannot reach either API, so what is built and tested is the request (cloud_render.py,
shown by `--dry-run`) and the refusal: a submit without the credentials in the environment, or
with credentials the API does not accept or cannot be reached with, fails in one line naming the
profile and what is missing. Tracking a workload once the API accepted it is not built here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nemotron_core.compat import nemo_run
from nemotron_core.errors import NemotronError, ProfileError
from nemotron_core.execution.options import job_options
from nemotron_core.execution.refs import JobRef
from nemotron_core.launch import Plan

_TITLE = {"dgxcloud": "DGX Cloud", "lepton": "Lepton"}


class CloudBackend:
    kind = "dgxcloud"

    def submit(self, executor: Any, plan: Plan, ref: JobRef, secrets_path: Path | None) -> JobRef:
        opts = job_options(executor)
        names = tuple(getattr(executor, "cloud_credentials", ()))
        missing = [n for n in names if not os.environ.get(n)]
        if missing:
            raise ProfileError(f"profile '{opts.profile}': submitting to {_TITLE[self.kind]} needs "
                               f"{' and '.join('$' + n for n in names)} in the environment (missing: "
                               f"{', '.join(missing)}); `--dry-run` shows the request without them")
        self._reach(executor, opts.profile, names)
        raise NemotronError(f"profile '{opts.profile}': {_TITLE[self.kind]} accepted the credentials, but tracking "
                            f"its workloads is not built in this repository (rendered only: use --dry-run)")

    def _reach(self, executor: Any, profile: str, names: tuple[str, ...]) -> None:
        # nemo-run's get_auth_token request, sent once: its own retries sleep 30 s and log each failure.
        import requests

        url = f"{executor.base_url}/token"
        body = {"grantType": "client_credentials", "clientId": os.environ[names[0]],
                "clientSecret": os.environ[names[1]]}
        try:
            response = requests.post(url, json=body, headers={"Accept": "application/json"}, timeout=20)
            token = response.json().get("accessToken") if response.ok else None
        except requests.RequestException as e:  # one line, without the body (it holds the secret)
            raise NemotronError(f"profile '{profile}': DGX Cloud at {executor.base_url} is not reachable "
                                f"({type(e).__name__})") from None
        except ValueError:  # not JSON
            token = None
        if not token:
            raise NemotronError(f"profile '{profile}': DGX Cloud at {executor.base_url} issued no token for "
                                f"${names[0]}/${names[1]} (HTTP {response.status_code}; check the app id and secret)")

    def recover_id(self, ref: JobRef) -> str | None:
        return None

    def gone_from_queue(self, ref: JobRef) -> bool:
        return True


class DGXCloudBackend(CloudBackend):
    kind = "dgxcloud"


class LeptonBackend(CloudBackend):
    kind = "lepton"

    def _reach(self, executor: Any, profile: str, names: tuple[str, ...]) -> None:
        nemo_run()  # the leptonai import alias
        from leptonai.api.v2.client import APIClient  # optional extra (leptonai)

        workspace = getattr(executor, "cloud_workspace", None)
        try:
            APIClient(workspace_id=workspace, auth_token=os.environ[names[0]]).nodegroup.list_all()
        except Exception as e:
            raise NemotronError(f"profile '{profile}': Lepton workspace {workspace!r} is not reachable with "
                                f"$LEPTON_WORKSPACE_TOKEN ({type(e).__name__})") from None
