"""The env.toml schema: every key a profile or special section may hold, and its type.

`validate_env(data, source)` checks a parsed env.toml and raises a one-line ProfileError:
- an unknown key (`partiton`) names the profile and the nearest known key;
- a wrong type (`mounts = "/a:/b"`, `env = "FOO=1"`, `additional_parameters = "x"`) names
  the key and the type it must have;
- a newline or other control character in any key or string value is refused (values
  reach generated shell scripts; a newline in `partition` would end the #SBATCH line);
- environment variable names (`env`/`env_vars` keys, `secrets`, `api_key_env`) must match
  [A-Za-z_][A-Za-z0-9_]* (their case is kept).
Types are strict: TOML already says what a value is, so "8" is not a number of nodes.
Fields default to None without admitting it as input (TOML has no null), which keeps
pydantic's error locations free of union-member tags.
The models only validate; profiles.py keeps the tables as plain dicts (Profile.data).
`[artifacts]` and `[cli]` are checked for control characters only: the artifact
registry validates its own keys (nemotron_core.artifacts.open_registry).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from nemotron_core.errors import ProfileError, did_you_mean, one_of
from nemotron_core.secrets import is_secret_key, is_secret_name

#: The executors a profile may name (each built by nemotron_core/execution).
EXECUTORS = ("local", "slurm", "ray", "docker", "dgxcloud", "lepton", "skypilot")

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: C0 controls (newline, CR, tab, ESC...), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

EnvName = Annotated[StrictStr, Field(pattern=ENV_NAME.pattern)]
Count = Annotated[StrictInt, Field(ge=0)]
Scalar = Union[StrictStr, StrictInt, StrictFloat, StrictBool]
Text = StrictStr


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class WandbTable(_Table):
    entity: Text = None
    project: Text = None
    mode: Text = None
    api_key_env: EnvName = None


class CacheTable(_Table):
    git_dir: Text = None
    results: Text = None


class ProfileTable(_Table):
    """One `[profile]` table as written (before `extends` is applied: every key optional)."""

    executor: Literal[EXECUTORS] | None = None  # type: ignore[valid-type]
    extends: Text | list[Text] = None
    # resources (runspec < profile < CLI)
    nodes: Count = None
    gpus_per_node: Count = None
    ntasks_per_node: Count = None
    nproc_per_node: Count = None
    cpus_per_task: Count = None
    # Slurm
    account: Text = None
    partition: Text = None
    run_partition: Text = None
    batch_partition: Text = None
    build_partition: Text = None  # the seed's container-build jobs; known so its env.toml loads (unused here)
    build_time: Text | Count = None
    qos: Text = None
    gres: Text = None
    constraint: Text = None
    mem: Text | Count = None
    time: Text | Count = None
    exclusive: StrictBool = None
    retries: Count = None
    additional_parameters: dict[Text, Scalar] = None
    rdzv_port: Count = None
    ray_port: Count = None
    # containers
    container_image: Text = None
    container: Text = None
    mounts: list[Text] = None
    squash: StrictBool = None
    squash_dir: Text = None
    squash_time: Text = None
    # Docker (execution/docker_profile.py)
    shm_size: Text = None
    network: Literal["none", "host"] = None
    ipc_mode: Text = None
    ulimits: list[Text] = None
    runtime: Text = None
    docker_host: Text = None
    # DGX Cloud and Lepton (execution/cloud_profile.py)
    base_url: Text = None
    kube_apiserver_url: Text = None
    project: Text = None
    pvc_nemo_run_dir: Text = None
    pvcs: list[dict[Text, Scalar]] = None
    app_id_env: EnvName = None
    app_secret_env: EnvName = None
    distributed_framework: Text = None
    workspace: Text = None
    resource_shape: Text = None
    node_group: Text = None
    node_reservation: Text = None
    nemo_run_dir: Text = None
    mount_from: Text = None
    shared_memory_size: Count = None
    image_pull_secrets: list[Text] = None
    # SkyPilot (execution/skypilot_profile.py)
    cloud: Text = None
    region: Text = None
    zone: Text = None
    infra: Text = None
    accelerators: Text = None
    disk_size: Count = None
    use_spot: StrictBool = None
    file_mounts: dict[Text, Text] = None
    cluster_name: Text = None
    # where the cluster is
    tunnel: Literal["local", "ssh"] = None
    host: Text = None
    user: Text = None
    port: Count = None
    identity: Text = None
    known_hosts: Text = None
    connect_timeout: Annotated[StrictInt, Field(ge=1)] = None
    remote_job_dir: Text = None
    slurm_conf: Text = None
    # code and environment of the job
    packager: Text = None
    code_excludes: list[Text] = None
    python: Text = None
    startup_commands: list[Text] = None
    env: dict[EnvName, Scalar] = None
    env_vars: dict[EnvName, Scalar] = None
    secrets: list[EnvName] = None
    wandb: WandbTable = None
    output_root: Text = None
    # Ray
    address: Text = None
    entrypoint_num_cpus: Annotated[StrictInt | StrictFloat, Field(ge=0)] = None


SECTIONS: dict[str, type[BaseModel] | None] = {"wandb": WandbTable, "cache": CacheTable, "artifacts": None, "cli": None}

#: What each key must be, in the words of an error message.
_ENV_TABLE = "a table of NAME = value (e.g. [p.env] NCCL_DEBUG = \"WARN\")"
EXPECTED: dict[str, str] = {
    "executor": f"one of {one_of(EXECUTORS)}",
    "extends": "a profile name or a list of names",
    "mem": "a string such as \"64G\" (or a number of MB)",
    "time": "a string such as \"04:00:00\" (or a number of minutes)",
    "exclusive": "true or false", "squash": "true or false",
    "additional_parameters": "a table of sbatch option = value (e.g. {mail-type = \"END\"})",
    "mounts": "a list of \"HOST:CONTAINER\" strings (e.g. [\"/lustre:/lustre\"])",
    "code_excludes": "a list of glob strings", "startup_commands": "a list of shell lines",
    "env": _ENV_TABLE, "env_vars": _ENV_TABLE,
    "secrets": "a list of environment variable names (e.g. [\"HF_TOKEN\"])",
    "wandb": "a table (entity, project, mode, api_key_env)",
    "tunnel": "local or ssh",
    "network": "none or host (docker jobs never use a bridge)",
    "connect_timeout": "a number of seconds (at least 1)",
    "entrypoint_num_cpus": "a non-negative number",
    "pvcs": "a list of tables such as [{claimName = \"ws\", path = \"/workspace\"}]",
    "image_pull_secrets": "a list of secret names",
    "use_spot": "true or false",
    "file_mounts": "a table of \"/remote/path\" = \"local path\"",
}
EXPECTED.update({k: "a non-negative integer" for k in ("nodes", "gpus_per_node", "ntasks_per_node", "nproc_per_node",
                                                       "cpus_per_task", "retries", "rdzv_port", "ray_port", "port",
                                                       "shared_memory_size", "disk_size")})


def validate_env(data: dict[str, Any], source: str, special: tuple[str, ...]) -> None:
    """Check every table of a parsed env.toml; raise ProfileError on the first problem."""
    for name, table in data.items():
        where = f"{source}: [{name if not _CONTROL.search(name) else repr(name)}]"
        _check_text(name, where, "the table name")
        _check_controls(table, where, ())
        model = SECTIONS.get(name) if name in special else ProfileTable
        if model is None:
            continue
        try:
            model.model_validate(table)
        except ValidationError as e:
            raise ProfileError(_message(dict(e.errors()[0]), where, model, table)) from None


def _check_text(text: str, where: str, what: str) -> None:
    match = _CONTROL.search(text)
    if match:
        raise ProfileError(f"{where} {what} holds a control character ({match.group()!r}); values reach job "
                           f"scripts, so newlines and other control characters are refused")


def _check_controls(node: Any, where: str, at: tuple) -> None:
    key = ".".join(map(str, at))
    if isinstance(node, dict):
        for k, v in node.items():
            _check_text(str(k), where, f"key {'.'.join(map(str, (*at, k)))!r}")
            _check_controls(v, where, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_controls(v, where, (*at, i))
    elif isinstance(node, str):
        _check_text(node, where, f"{key}")


def _message(err: dict[str, Any], where: str, model: type[BaseModel], table: Any) -> str:
    loc, key_error = _real_loc(err["loc"], table)
    key = str(loc[0]) if loc else "?"
    dotted = ".".join(map(str, loc))
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(model, [str(p) for p in loc[:-1]])
        known = list(parent.model_fields) if parent else []
        hint = did_you_mean(str(loc[-1]), known) or "; see the env.toml reference in README.md for the keys"
        return f"{where} unknown key '{dotted}'{hint}"
    if kind == "string_pattern_mismatch":  # only env var names carry a pattern
        name = loc[-1] if key_error else err["input"]
        dotted = ".".join(map(str, loc[:-1])) if key_error else dotted
        return (f"{where} {dotted}: {str(name)!r} is not an environment variable name "
                f"(letters, digits and _, not starting with a digit)")
    # A value under a secret-looking key is not echoed (`secrets` itself only lists names).
    secret = any(is_secret_key(str(p)) or is_secret_name(str(p)) for p in loc if p != "secrets")
    shown = "" if secret else f" = {_short(err['input'])}"
    if key == "executor":
        return f"{where} executor{shown} is not one of {one_of(EXECUTORS)}{did_you_mean(str(err['input']), EXECUTORS)}"
    if len(loc) == 2 and key in ("env", "env_vars", "additional_parameters"):
        return f"{where} {dotted}{shown}: must be a string, number or true/false"
    if model is not ProfileTable or (len(loc) > 1 and key == "wandb"):
        return f"{where} {dotted}{shown}: must be a string"
    if len(loc) > 1:
        return f"{where} {dotted}{shown}: {key} must be {EXPECTED.get(key, 'a string')}"
    return f"{where} {key}{shown}: must be {EXPECTED.get(key, 'a string')}"


def _real_loc(loc: tuple, table: Any) -> tuple[list, bool]:
    """The error's location as keys of the input (pydantic adds union tags and '[key]')."""
    out, node, key_error = [], table, False
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif part == "[key]":
            key_error = True
    return out, key_error


def _model_at(model: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    for part in loc:
        field = model.model_fields.get(part)
        sub = next((a for a in _args(field.annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None) \
            if field else None
        if sub is None:
            return None
        model = sub
    return model


def _args(annotation: Any) -> tuple:
    return get_args(annotation) or (annotation,)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "...'"
