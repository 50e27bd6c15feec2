"""What a DGX Cloud or Lepton submit would send, rendered by nemo-run's own request builders.

nemo-run builds the request inside the method that sends it (`DGXCloudExecutor.create_training_job`
posts with `requests.post`; `LeptonExecutor.create_lepton_job` creates the job through leptonai's
`APIClient`). To show exactly that request without a network, the method runs against a capture
transport swapped into its module for the call: the payload is recorded and nothing is sent.
The ids the real submit looks up by name (DGX project/cluster, Lepton node group and its nodes)
are shown as placeholders; credentials are never in the executor, so never in the output.

    text = render_request(executor, plan, job_dir)   # for `--dry-run`
"""

from __future__ import annotations

import copy
import json
import shlex
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nemotron_core.execution.backends.cloud_command import job_command
from nemotron_core.execution.options import job_options
from nemotron_core.execution.skypilot_profile import render_task
from nemotron_core.launch import Plan

_PATCH = threading.Lock()  # one capture at a time: the swapped name is module-global


class _Captured(Exception):
    """Raised by the capture transport once it holds the request: nothing after it runs."""


def remote_job_dir(root: str, job_dir: str | Path) -> str:
    """The job dir on the cloud's shared storage (same layout as under the state folder)."""
    job_dir = Path(job_dir)
    return f"{root.rstrip('/')}/{job_dir.parent.name}/{job_dir.name}"


def _launch_script(executor: Any, plan: Plan, job_dir: str | Path, remote_dir: str) -> str:
    # The lines nemo-run's launch() writes to launch_script.sh around the command (0.11.1).
    cmd = shlex.join(job_command(executor, plan, job_dir, remote_dir))
    if type(executor).__name__ == "DGXCloudExecutor":
        return "\n".join([f"ln -s {remote_dir}/ /nemo_run", "cd /nemo_run/code", f"mkdir -p {remote_dir}/logs",
                          f"{cmd} 2>&1 | tee -a {remote_dir}/log_$HOSTNAME.out {remote_dir}/log-allranks_0.out"])
    return "\n".join([*executor.pre_launch_commands,
                      "wget -O init.sh https://raw.githubusercontent.com/leptonai/scripts/main/lepton_env_to_pytorch.sh",
                      "chmod +x init.sh", "source init.sh", f"ln -s {remote_dir}/ /nemo_run", "cd /nemo_run/code", cmd])


def render_dgxcloud(executor: Any, plan: Plan, job_dir: str | Path) -> tuple[str, dict[str, Any], str]:
    """(url, payload, launch script) of DGXCloudExecutor.create_training_job, not sent."""
    from nemo_run.core.execution import dgxcloud as module  # lazy: nemo_run.core.execution is a heavy import

    ex = copy.copy(executor)
    ex.pvc_job_dir = remote_job_dir(ex.pvc_nemo_run_dir, job_dir)
    seen: dict[str, Any] = {}

    class Capture:
        @staticmethod
        def post(url: str, json: Any = None, headers: Any = None, **_: Any) -> None:
            seen.update(url=url, payload=json)
            raise _Captured

    name = Path(job_dir).name.replace("_", "-").replace(".", "-").lower()[:34]
    with _PATCH:
        real, module.requests = module.requests, Capture
        try:
            ex.create_training_job("<token>", f"<id of project {ex.project_name}>", "<id of its cluster>", name)
        except _Captured:
            pass
        finally:
            module.requests = real
    return seen["url"], seen["payload"], _launch_script(ex, plan, job_dir, ex.pvc_job_dir)


def render_lepton(executor: Any, plan: Plan, job_dir: str | Path) -> tuple[dict[str, Any], str]:
    """(job spec, launch script) of LeptonExecutor.create_lepton_job, not sent."""
    from nemo_run.core.execution import lepton as module  # lazy: nemo_run.core.execution is a heavy import

    ex = copy.copy(executor)
    ex.lepton_job_dir = remote_job_dir(ex.nemo_run_dir, job_dir)
    seen: dict[str, Any] = {}
    group = SimpleNamespace(metadata=SimpleNamespace(name=ex.node_group, id_=f"<id of node group {ex.node_group}>"))
    node = SimpleNamespace(metadata=SimpleNamespace(id_="<each node of the group>"))

    def create(job: Any) -> None:
        seen["job"] = job
        raise _Captured

    class Capture:
        def __init__(self, *_: Any, **__: Any) -> None:
            self.nodegroup = SimpleNamespace(list_all=lambda: [group], list_nodes=lambda _g: [node])
            self.job = SimpleNamespace(create=create)

    name = Path(job_dir).name.replace("_", "-").replace(".", "-").lower()[:34]
    with _PATCH:
        real, module.APIClient = module.APIClient, Capture
        try:
            ex.create_lepton_job(name)
        except _Captured:
            pass
        finally:
            module.APIClient = real
    spec = seen["job"].model_dump(mode="json", by_alias=True, exclude_none=True)
    return spec, _launch_script(ex, plan, job_dir, ex.lepton_job_dir)


def render_request(executor: Any, plan: Plan, job_dir: str | Path) -> str:
    """The dry-run text: the request nemo-run would send, the credentials' names, the launch script."""
    kind = type(executor).__name__
    opts = job_options(executor)
    if kind == "SkypilotExecutor":
        return "\n".join([f"profile {opts.profile}", "SkyPilot task (nemo-run SkypilotExecutor.to_task), not launched:",
                          render_task(executor, plan, job_dir)])
    if kind == "DGXCloudExecutor":
        url, payload, script = render_dgxcloud(executor, plan, job_dir)
        head = ["DGX Cloud request (nemo-run DGXCloudExecutor.create_training_job), not sent:", f"POST {url}"]
        creds = ("credentials at submit: app id and secret from $" + " and $".join(executor.cloud_credentials)
                 + " (never shown; the profile's secrets do not reach DGX Cloud jobs)")
    else:
        payload, script = render_lepton(executor, plan, job_dir)
        head = ["Lepton job (nemo-run LeptonExecutor.create_lepton_job), not sent:", "create job"]
        creds = "credentials at submit: $LEPTON_WORKSPACE_TOKEN; secrets reach the job as workspace secret references"
    return "\n".join([f"profile {opts.profile}", *head, json.dumps(payload, indent=2, sort_keys=True), creds,
                      "launch_script.sh:", script])
