"""`executor = "dgxcloud"` / `"lepton"` profiles → nemo-run's `DGXCloudExecutor` / `LeptonExecutor`.

    [dgx]
    executor = "dgxcloud"
    base_url = "https://dgxc.example.com/api/v1"   # required: the DGX Cloud (Run:ai) API
    kube_apiserver_url = "https://k8s.example.com" # optional (nemo-run's log streaming)
    project = "nemotron"                           # required: the project the workload runs in
    container_image = "nvcr.io/nvidia/nemo:25.09"  # required (or `container`, or the runspec's image)
    pvc_nemo_run_dir = "/workspace/nemo_run"       # required: job dirs on a PVC
    pvcs = [{claimName = "ws", path = "/workspace"}]  # required: one of them holds pvc_nemo_run_dir
    nodes = 2                                      # > 1: a distributed (PyTorch) workload
    gpus_per_node = 8
    app_id_env = "DGXC_APP_ID"                     # env vars holding the app id / secret (the defaults)
    app_secret_env = "DGXC_APP_SECRET"

    [lep]
    executor = "lepton"
    workspace = "ws-abc"                           # required (its token: $LEPTON_WORKSPACE_TOKEN)
    resource_shape = "gpu.8xh100-80gb"             # required
    node_group = "my-node-group"                   # required
    node_reservation = "res-1"                     # optional
    container_image = "nvcr.io/nvidia/nemo:25.09"
    nemo_run_dir = "/lepton/nemo_run"              # required: job dirs on the shared filesystem
    mounts = ["/shared/data:/data"]                # "STORAGE_PATH:CONTAINER_PATH"
    mount_from = "node-nfs:lepton-shared-fs"       # the storage those paths live on (default shown)
    shared_memory_size = 65536                     # MiB
    image_pull_secrets = ["ngc"]

Secrets never ride in the executor: DGX Cloud's app id/secret are read from the environment at
submit time only (a dry-run shows the variable names); Lepton jobs get the profile's `secrets`
as references to workspace secrets of the same name (`value_from`), never values.
"""

from __future__ import annotations

from typing import Any

from nemotron_core.compat import nemo_run
from nemotron_core.errors import ProfileError
from nemotron_core.execution.options import JobOptions
from nemotron_core.execution.shellsafe import check_mount, check_value
from nemotron_core.launch import resources
from nemotron_core.paths import state_env
from nemotron_core.profiles import Profile
from nemotron_core.runspec import Runspec

DGX_ID_ENV, DGX_SECRET_ENV = "DGXC_APP_ID", "DGXC_APP_SECRET"
LEPTON_TOKEN_ENV = "LEPTON_WORKSPACE_TOKEN"
DEFAULT_MOUNT_FROM = "node-nfs:lepton-shared-fs"
#: What a rendered executor holds instead of a credential.
UNSET = "<set at submit>"


def _required(profile: Profile, key: str, hint: str) -> str:
    value = profile.get(key)
    if value in (None, ""):
        raise ProfileError(f"profile '{profile.name}': executor = '{profile.executor}' needs {key} = {hint}")
    return check_value(value, profile=profile.name, key=key)


def _optional(profile: Profile, key: str) -> str:
    value = profile.get(key)
    return "" if value in (None, "") else check_value(value, profile=profile.name, key=key)


def _image(profile: Profile, spec: Runspec) -> str:
    image = next((profile.get(k) for k in ("container_image", "container") if profile.get(k) is not None), None)
    image = image if image is not None else getattr(spec, "image", None)
    if not image:
        raise ProfileError(f"profile '{profile.name}': executor = '{profile.executor}' needs container_image = "
                           f"\"REGISTRY/IMAGE:TAG\" (the runspec names none)")
    return check_value(image, profile=profile.name, key="container_image")


def _attach(executor: Any, options: JobOptions) -> Any:
    object.__setattr__(executor, "nemotron", options)  # what jobs.py reads through job_options()
    return executor


def credential_names(profile: Profile) -> tuple[str, ...]:
    """The environment variables a real submit reads its credentials from."""
    if profile.executor == "dgxcloud":
        return (str(profile.get("app_id_env") or DGX_ID_ENV), str(profile.get("app_secret_env") or DGX_SECRET_ENV))
    return (LEPTON_TOKEN_ENV,)


def _pvcs(profile: Profile, run_dir: str) -> list[dict[str, Any]]:
    pvcs = profile.get("pvcs") or []
    if not pvcs:
        raise ProfileError(f"profile '{profile.name}': executor = 'dgxcloud' needs pvcs = [{{claimName = \"NAME\", "
                           f"path = \"/workspace\"}}] (the PVC holding pvc_nemo_run_dir)")
    out = []
    for pvc in pvcs:
        if not isinstance(pvc, dict) or not pvc.get("claimName") or not str(pvc.get("path", "")).startswith("/"):
            raise ProfileError(f"profile '{profile.name}': pvcs entry {pvc!r} needs claimName = \"NAME\" and an "
                               f"absolute path = \"/mount/point\"")
        out.append({str(k): v for k, v in pvc.items()})
    if not any(run_dir == p["path"].rstrip("/") or run_dir.startswith(p["path"].rstrip("/") + "/") for p in out):
        raise ProfileError(f"profile '{profile.name}': pvc_nemo_run_dir = {run_dir!r} is on none of the pvcs "
                           f"({', '.join(p['path'] for p in out)}); job dirs must live on a PVC")
    return out


def dgxcloud_executor(profile: Profile, spec: Runspec, *, env: dict[str, str], base: dict[str, Any],
                      nodes: int | None, gpus_per_node: int | None) -> Any:
    base_url = _required(profile, "base_url", "\"https://HOST/api/v1\" (the DGX Cloud API)")
    if not base_url.startswith("https://"):
        raise ProfileError(f"profile '{profile.name}': base_url = {base_url!r} must be an https:// URL "
                           f"(the app secret is sent to it)")
    project = _required(profile, "project", "\"PROJECT\" (the DGX Cloud project)")
    run_dir = _required(profile, "pvc_nemo_run_dir", "\"/workspace/nemo_run\" (job dirs on a PVC)").rstrip("/")
    pvcs = _pvcs(profile, run_dir)
    n, g = resources(spec, profile, nodes, gpus_per_node)
    ex = nemo_run().DGXCloudExecutor(
        base_url=base_url.rstrip("/"), kube_apiserver_url=_optional(profile, "kube_apiserver_url"),
        client_id=UNSET, client_secret=UNSET, project_name=project, container_image=_image(profile, spec),
        pvc_nemo_run_dir=run_dir, pvcs=pvcs, nodes=max(n, 1), gpus_per_node=g, nprocs_per_node=g or 1,
        distributed_framework=_optional(profile, "distributed_framework") or "PyTorch", env_vars=env,
        packager=nemo_run().Packager(), retries=0)
    object.__setattr__(ex, "cloud_credentials", credential_names(profile))  # names only, read at submit
    return _attach(ex, JobOptions(**base, python=_optional(profile, "python") or "python"))


def _lepton_mount(profile: Profile, text: object, source: str) -> dict[str, str]:
    mount = check_mount(text, profile=profile.name)
    parts = mount.split(":")
    if len(parts) != 2 or not all(p.startswith("/") for p in parts):
        raise ProfileError(f"profile '{profile.name}': mounts entry {mount!r} must be \"/storage/path:/container/path\" "
                           f"(absolute paths on {source})")
    return {"path": parts[0], "mount_path": parts[1], "from": source}


def lepton_executor(profile: Profile, spec: Runspec, *, env: dict[str, str], base: dict[str, Any],
                    nodes: int | None, gpus_per_node: int | None) -> Any:
    workspace = _required(profile, "workspace", "\"WORKSPACE_ID\" (its token comes from $LEPTON_WORKSPACE_TOKEN)")
    shape = _required(profile, "resource_shape", "\"gpu.8xh100-80gb\" (a shape of the node group)")
    group = _required(profile, "node_group", "\"NODE_GROUP\" (the dedicated node group to run on)")
    run_dir = _required(profile, "nemo_run_dir", "\"/shared/nemo_run\" (job dirs on the shared filesystem)")
    source = _optional(profile, "mount_from") or DEFAULT_MOUNT_FROM
    mounts = [_lepton_mount(profile, m, source) for m in (profile.get("mounts") or [])]
    shm = profile.get("shared_memory_size", 65536)
    if isinstance(shm, bool) or not isinstance(shm, int) or shm < 0:
        raise ProfileError(f"profile '{profile.name}': shared_memory_size = {shm!r} must be a number of MiB")
    pulls = [check_value(s, profile=profile.name, key="image_pull_secrets") for s in
             (profile.get("image_pull_secrets") or [])]
    n, g = resources(spec, profile, nodes, gpus_per_node)
    secret_refs = {name: name for name in base.get("secret_names", ())}  # workspace secrets of the same name
    ex = nemo_run().LeptonExecutor(
        container_image=_image(profile, spec), nemo_run_dir=run_dir.rstrip("/"), nodes=max(n, 1), gpus_per_node=g,
        nprocs_per_node=g or 1, shared_memory_size=shm, resource_shape=shape, node_group=group,
        node_reservation=_optional(profile, "node_reservation"), secret_vars=secret_refs, mounts=mounts,
        image_pull_secrets=pulls, env_vars=env, packager=nemo_run().Packager(), retries=0)
    object.__setattr__(ex, "cloud_credentials", credential_names(profile))
    object.__setattr__(ex, "cloud_workspace", workspace)
    return _attach(ex, JobOptions(**base, python=_optional(profile, "python") or "python"))


def cloud_executor(profile: Profile, spec: Runspec, *, env: dict[str, str], base: dict[str, Any],
                   nodes: int | None, gpus_per_node: int | None) -> Any:
    """The executor of a dgxcloud, lepton or skypilot profile (create_executor's entry point)."""
    # This host's state-folder paths (caches, homes) mean nothing on the cloud's machines.
    local = state_env()
    env = {k: v for k, v in env.items() if local.get(k) != v}
    if profile.executor == "skypilot":
        # lazy: only this branch uses it
        from nemotron_core.execution.skypilot_profile import skypilot_executor as build
    else:
        build = dgxcloud_executor if profile.executor == "dgxcloud" else lepton_executor
    return build(profile, spec, env=env, base=base, nodes=nodes, gpus_per_node=gpus_per_node)
