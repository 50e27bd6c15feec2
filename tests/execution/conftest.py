"""Helpers for the execution-layer tests: a private state folder and a one-call job builder.

`stage(recipe, profile_toml, *dotlist)` does what a stage's Prefect task does before
submitting: parse the runspec, load the profile from an env.toml written into the test's
folder, build job.yaml/train.yaml, plan, create the executor. Slurm/Ray tests get the
real services from tests/fixtures/services.py (slurm_cluster, ray_head).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
JOB_RECIPE = "tests/fixtures/recipes/job/job.py"
RANKS_RECIPE = "tests/fixtures/recipes/ranks/ranks.py"
#: A remote-looking Slurm profile (2 nodes x 8 GPUs, a squash image, a Lustre mount) for dry-runs and rendering:
#: test_slurm_executor renders it, benchmarks/cli_latency.py times `--run cluster --dry-run` on it.
CLUSTER_TOML = """[cluster]
executor = "slurm"
account = "acct"
partition = "batch"
nodes = 2
gpus_per_node = 8
container_image = "/lustre/images/nemo.sqsh"
mounts = ["/lustre:/lustre"]
"""


@dataclass
class Staged:
    executor: object
    plan: object
    job_dir: Path
    spec: object
    profile: object


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    """A private NEMOTRON_STATE_DIR: job dirs, refs and indexes of this test only."""
    s = tmp_path / "state"
    s.mkdir()
    monkeypatch.setenv("NEMOTRON_STATE_DIR", str(s))
    from nemotron_core.secrets import is_secret_name

    for name in list(os.environ):  # the test decides which secrets exist
        if is_secret_name(name):
            monkeypatch.delenv(name)
    return s


@pytest.fixture
def slurm(slurm_cluster, monkeypatch):
    """The session's local Slurm, as the environment every Slurm client call of the test sees."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster


SLURM_BASE = {"executor": "slurm", "container_image": "", "partition": "debug", "time": "00:05:00",
              "ntasks_per_node": 1}


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def slurm_profile(name: str = "slurm", **keys) -> str:
    """env.toml text with one Slurm profile for the local test cluster (no container, debug partition)."""
    table = {**SLURM_BASE, **keys}
    return f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())


@pytest.fixture
def stage(tmp_path, state):
    from nemotron_core.config import (build_job_config, extract_train_config, generate_job_dir, parse_config,
                                      save_configs)
    from nemotron_core.execution import create_executor, job_paths
    from nemotron_core.launch import plan_job
    from nemotron_core.paths import PACKAGE_ROOT
    from nemotron_core.profiles import load_env
    from nemotron_core.runspec import parse

    def build(recipe: str, env_toml: str, profile: str, *dotlist: str, passthrough=(), nodes=None,
              gpus_per_node=None, mode: str = "batch", config: str | None = None) -> Staged:
        env_file = tmp_path / "env.toml"
        env_file.write_text(env_toml)
        spec = parse(REPO / recipe)
        prof = load_env(env_file).profile(profile)
        train = parse_config(spec.config_dir, config, list(dotlist), default=spec.config.default)
        job = build_job_config(train, spec=spec, mode=mode, profile=prof, dotlist=list(dotlist),
                               passthrough=list(passthrough))
        job_dir = generate_job_dir(spec.name)
        plan = plan_job(spec, prof, job_dir / "train.yaml", passthrough=list(passthrough), nodes=nodes,
                        gpus_per_node=gpus_per_node)
        executor = create_executor(prof, spec, nodes=nodes, gpus_per_node=gpus_per_node, attached=False,
                                   job_config=job)
        paths = job_paths(executor, job_dir)
        save_configs(job, extract_train_config(job, for_remote=paths.in_job != str(paths.local),
                                               code_root=PACKAGE_ROOT, remote_root=paths.code), job_dir)
        return Staged(executor=executor, plan=plan, job_dir=job_dir, spec=spec, profile=prof)

    return build


def files_containing(needle: str, *roots: Path) -> list[Path]:
    """Every regular file under roots whose bytes contain needle (binary files included)."""
    hits, data = [], needle.encode()
    for root in roots:
        if root.is_file():
            candidates = [root]
        else:
            candidates = [Path(d) / f for d, _, fs in os.walk(root) for f in fs]
        for path in candidates:
            try:
                if path.is_file() and not path.is_symlink() and data in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return sorted(set(hits))
