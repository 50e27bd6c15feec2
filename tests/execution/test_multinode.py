"""Past one node: the pretrain trainer over 2 Slurm nodes, and data prep on a 2-node Ray cluster.

Its own Slurm cluster (module fixture `two_nodes`): `scripts/slurm start --nodes 2` = nodes
n1, n2 on this host (1 CPU each, mapped to 127.0.0.1), under the test state folder, on ports
no other cluster uses. The jobs go through the same executor path as a real cluster: a Slurm
profile with nodes = 2 → nemo-run's SlurmExecutor → sbatch (for Ray without a container:
our head/worker script, nemotron_core/execution/backends/ray_slurm.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemotron_core.execution import JobState, submit
from nemotron_core.paths import ray_link_dir
from tests.execution.conftest import REPO, slurm_profile
from tests.fixtures.services import SlurmCluster, _one_line_error, _parse_exports, _port_free, _script

PRETRAIN = "recipes/nano3/stage0_pretrain/train.py"
PREP = REPO / "recipes/nano3/stage0_pretrain/data_prep.py"
# The tiny config, shortened; 1 thread per rank (each fake node has 1 CPU); no W&B.
SHORT = ["train.max_steps=30", "checkpoint.interval=30", "eval.interval=30", "log.interval=10",
         "log.wandb.mode=disabled", "runtime.threads=1"]


def _free_block(start: int, size: int) -> int:
    """The first port p >= start with p .. p+size-1 all free on 127.0.0.1."""
    base = start
    while not all(_port_free(p) for p in range(base, base + size)):
        base += size
        if base > 60000:
            raise RuntimeError(f"no {size} free ports from {start}")
    return base


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[SlurmCluster]:
    """A private 2-node cluster (stopped at the end of the module)."""
    state = Path(os.environ["NEMOTRON_STATE_DIR"]) / "mn2"
    base = _free_block(int(os.environ.get("NEMOTRON_MULTINODE_SLURM_PORT", "17400")), 4)
    ports = {"NEMOTRON_SLURMCTLD_PORT": str(base), "NEMOTRON_SLURMD_PORT": str(base + 1)}  # nodes: +1, +2
    proc = _script("slurm", "start", "--nodes", "2", state=state, extra=ports, timeout=900)
    if proc.returncode != 0:
        msg = f"scripts/slurm start --nodes 2 failed: {_one_line_error(proc, 'slurm')}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    env = _parse_exports(proc.stdout)
    try:
        yield SlurmCluster(conf=Path(env["SLURM_CONF"]), env=env, state=state / "services" / "slurm")
    finally:
        _script("slurm", "stop", state=state, extra=ports, timeout=180)


@pytest.fixture(scope="module")
def pretrain_data(two_nodes) -> Path:
    """The tiny pretrain data, made here in one process (the reference for the Ray run too)."""
    out = Path(os.environ["NEMOTRON_STATE_DIR"]) / "mn2" / "pretrain-data"
    if not (out / "RESULT.json").is_file():
        _run([sys.executable, str(PREP), "--config", "tiny", f"output_dir={out}"])
    return out


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "WANDB_API_KEY")}
    return env


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), timeout=900, cwd=REPO)
    assert p.returncode == 0, f"rc={p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def _result(out: Path) -> dict:
    return json.loads((out / "RESULT.json").read_text())


def _jobcomp(cluster: SlurmCluster, job_id: str) -> str:
    lines = [ln for ln in cluster.jobcomp.read_text().splitlines() if f"JobId={job_id} " in ln]
    assert lines, f"job {job_id} not in {cluster.jobcomp}"
    return lines[-1]


@pytest.mark.slurm
@pytest.mark.parametrize("parallelism", ["ddp", pytest.param("fsdp", marks=pytest.mark.slow)])
def test_pretrain_on_two_nodes_matches_one_node(two_nodes, pretrain_data, stage, tmp_path, monkeypatch,
                                                parallelism):
    """DDP, and (slow) FSDP: each node writes its shard of every checkpoint into the shared folder."""
    monkeypatch.setenv("SLURM_CONF", str(two_nodes.conf))
    # Reference: one process, the whole global batch of 16 in one micro-batch.
    ref = tmp_path / "one-node"
    _run([sys.executable, str(REPO / PRETRAIN), "--config", "tiny", f"output_dir={ref}",
          f"data_path={pretrain_data}", *SHORT])

    # 2 nodes x 1 task, torchrun c10d rendezvous on n1; the same global batch, 8 samples per rank.
    out = tmp_path / "two-nodes"
    rdzv = _free_block(29600, 1)
    profile = slurm_profile(nodes=2, ntasks_per_node=1, gpus_per_node=0, time="00:10:00",
                            slurm_conf=str(two_nodes.conf), rdzv_port=rdzv)
    s = stage(PRETRAIN, profile, "slurm", f"output_dir={out}", f"data_path={pretrain_data}", *SHORT,
              "train.micro_batch_size=8", f"parallelism.data={parallelism}", config="tiny")
    script = (s.job_dir / "sbatch.sh")
    lines: list[str] = []
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    status = job.wait(on_log=lines.append, timeout=600)
    log = "\n".join(lines)
    assert status.state is JobState.COMPLETED, f"{status}\n{log[-4000:]}"

    text = script.read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=1" in text
    assert f"--rdzv-backend c10d --rdzv-endpoint $head_node_ip:{rdzv}" in text
    assert "--nnodes 2 --nproc-per-node 1 --node-rank $SLURM_NODEID" in text
    assert "NodeList=n[1-2]" in _jobcomp(two_nodes, job.id)  # one task on each node

    res, single = _result(out), _result(ref)
    assert res["runtime"]["world_size"] == 2 and res["runtime"]["backend"] == "gloo", res["runtime"]
    assert res["metrics"]["grad_accum_steps"] == 1 and single["runtime"]["world_size"] == 1
    # The same samples and the same update, up to float summation order across ranks.
    assert res["metrics"]["final_loss"] == pytest.approx(single["metrics"]["final_loss"], abs=1e-3)
    assert res["metrics"]["final_loss"] < 6.0  # it learned something (ln 1024 = 6.93 at the start)
    if parallelism == "fsdp":
        shards = sorted(p.name for p in (out / "checkpoints" / "step_00000030" / "dcp").iterdir())
        assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"] and (out / "model/model.safetensors").is_file()


CLUSTER_PROFILE = """[cluster]
executor = "slurm"
account = "llm_pretrain"
partition = "batch"
time = "04:00:00"
nodes = 16
gpus_per_node = 8
exclusive = true
container_image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"
mounts = ["/lustre/fsw/llm:/lustre/fsw/llm"]
secrets = ["HF_TOKEN"]
"""


def _dry_run(tmp_path, *words: str, profile: str = CLUSTER_PROFILE) -> str:
    env_file = tmp_path / "env.toml"
    env_file.write_text(profile)
    env = {**_clean_env(), "NEMOTRON_ENV_FILE": str(env_file), "NEMOTRON_STATE_DIR": str(tmp_path / "state"),
           "HF_TOKEN": "hf_dry_run_never_printed", "COLUMNS": "200"}
    p = subprocess.run([str(Path(sys.executable).with_name("nemotron")), "nano3", *words, "--run", "cluster",
                        "--dry-run"], capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "hf_dry_run_never_printed" not in p.stdout + p.stderr
    assert not (tmp_path / "state" / "jobs").exists() or not any((tmp_path / "state" / "jobs").rglob("*.yaml"))
    return p.stdout


def test_dry_run_of_pretrain_on_16_nodes_is_an_sbatch_an_admin_accepts(tmp_path):
    out = _dry_run(tmp_path, "pretrain", "data_path=/lustre/fsw/llm/data/pretrain")
    for flag in ("--account=llm_pretrain", "--partition=batch", "--nodes=16", "--ntasks-per-node=1",
                 "--gpus-per-node=8", "--time=04:00:00", "--exclusive", "--requeue", "--job-name=nemotron-nano3-pretrain"):
        assert f"#SBATCH {flag}\n" in out, flag
    srun = next(line for line in out.splitlines() if line.startswith("srun "))
    assert "--container-image nvcr.io/nvidia/nemo:25.11.nemotron_3_nano" in srun
    assert "/lustre/fsw/llm:/lustre/fsw/llm" in srun and ":/nemo_run" in srun  # profile mounts + the job dir
    state = tmp_path / "state"
    assert f"{state}:{state}" in srun and f"export TMPDIR={state}/tmp" in out  # exported paths exist inside
    assert "torchrun --rdzv-backend c10d --rdzv-endpoint $head_node_ip:29500" in srun
    assert "--nnodes 16 --nproc-per-node 8 --node-rank $SLURM_NODEID" in srun
    assert "/nemo_run/code/recipes/nano3/stage0_pretrain/train.py --config /nemo_run/train.yaml" in srun
    assert "seq_length: 8192" in out and "global_batch_size: 128" in out  # the default (nano3-scale) config


def test_dry_run_of_data_prep_is_a_ray_job_whose_srun_flags_parse(tmp_path):
    out = _dry_run(tmp_path, "data", "prep", "pretrain")
    assert "#SBATCH --nodes=16\n" in out and "#SBATCH --account=llm_pretrain\n" in out and "ray start --head" in out
    sruns = [line for line in out.splitlines() if line.strip().startswith("srun ") and "--container-image" in line]
    assert sruns and all("--account=llm_pretrain --partition=batch" in line for line in sruns)
    assert " -p=" not in out and " -A=" not in out  # srun would read the partition as '=batch'


@pytest.mark.slurm
def test_data_prep_runs_on_a_ray_cluster_over_both_nodes(two_nodes, pretrain_data, stage, tmp_path, monkeypatch):
    from ray._private.ray_constants import LOG_PREFIX_TASK_NAME

    monkeypatch.setenv("SLURM_CONF", str(two_nodes.conf))
    # No container: our script starts the Ray head on n1 and a worker on n2 (1 CPU each, so the
    # 2 shard tasks at a time cannot both fit on one node), then runs data prep on n1.
    port = _free_block(int(os.environ.get("NEMOTRON_MULTINODE_SLURM_PORT", "17400")) + 10, 2)  # GCS + client server
    profile = slurm_profile(nodes=2, ntasks_per_node=1, gpus_per_node=0, time="00:10:00",
                            slurm_conf=str(two_nodes.conf), ray_port=port)
    out = tmp_path / "ray-prep"
    s = stage(str(PREP.relative_to(REPO)), profile, "slurm", f"+output_dir={out}", "workers=2", config="tiny")
    lines: list[str] = []
    job = submit(s.executor, s.plan, job_dir=s.job_dir)
    status = job.wait(on_log=lines.append, timeout=600)
    batch_out = "".join(p.read_text() for p in s.job_dir.glob("sbatch_*.out"))
    assert status.state is JobState.COMPLETED, f"{status}\n" + "\n".join(lines)[-3000:] + batch_out[-3000:]
    assert "NodeList=n[1-2]" in _jobcomp(two_nodes, job.id)
    # Every node joined, each on its own loopback address (never the host's network address).
    assert "ray: 2 nodes joined: n1=127.0.0.2 n2=127.0.0.3" in batch_out, batch_out[-3000:]

    # Ray's own record of where tasks ran: each node's worker logs (under <job dir>/ray/<node>)
    # name the task each worker process executed.
    logs = {node: {f.resolve() for f in (s.job_dir / "ray" / node).glob("session_*/logs/worker-*.out")}
            for node in ("n1", "n2")}  # session_latest links to the session's own folder
    ran = {node: sum(f.read_text(errors="replace").count(f"{LOG_PREFIX_TASK_NAME}_run_job") for f in files)
           for node, files in logs.items()}
    assert ran["n1"] >= 1 and ran["n2"] >= 1 and sum(ran.values()) == 4, ran  # the 4 shards, on both nodes

    # The same bytes as the one-process run (data prep's promise, whatever runs the shards).
    res, ref = _result(out), _result(pretrain_data)
    assert res["stats"] == ref["stats"]
    for f in sorted((pretrain_data / "megatron").rglob("*.bin")):
        assert (out / f.relative_to(pretrain_data)).read_bytes() == f.read_bytes(), f.name

    # The job's end took Ray along on both nodes, and the short /tmp links to their temp dirs
    # (the job folder is too deep for Ray's socket paths).
    ray_dir = s.job_dir.resolve() / "ray"
    names = [str(ray_dir), *(str(ray_link_dir() / f"ray-{hashlib.sha256(str(ray_dir / n).encode()).hexdigest()[:10]}")
                             for n in ("n1", "n2"))]
    deadline = time.monotonic() + 30
    while (left := _processes_naming(names)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, left
    assert not any(os.path.lexists(name) for name in names[1:]), names


def _processes_naming(names: list[str]) -> list[str]:
    """Command lines of live processes that contain one of `names`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(name in words for name in names):
            found.append(words[:200])
    return found


NO_CONTAINER_PROFILE = CLUSTER_PROFILE.replace('container_image = "nvcr.io/nvidia/nemo:25.11.nemotron_3_nano"',
                                               'container_image = ""\nray_port = 26500')


def test_dry_run_of_data_prep_without_container_starts_ray_itself(tmp_path):
    out = _dry_run(tmp_path, "data", "prep", "pretrain", profile=NO_CONTAINER_PROFILE)
    script = out[out.index("#!/bin/bash"):]
    assert "--container" not in script and "pyxis" not in script and "/launch-head.sh" not in script
    assert "#SBATCH --nodes=16\n" in script and "#SBATCH --account=llm_pretrain\n" in script
    assert "ray_port=26500\n" in script
    head = 'srun --overlap --nodes=1 --ntasks=1 -w "$ray_head" --output="$ray_dir/head-%j.out" bash "$ray_dir/node.sh" head'
    workers = ('srun --overlap --nodes=$((${#ray_nodes[@]} - 1)) --ntasks=$((${#ray_nodes[@]} - 1)) '
               '--ntasks-per-node=1 --exclude="$ray_head" --output="$ray_dir/worker-%t-%j.out" bash "$ray_dir/node.sh" worker')
    assert head in script and workers in script
    assert "start --head --port=\"$port\"" in script and "start --address=\"$head_ip:$port\"" in script
    assert 'export RAY_ADDRESS="$ray_head_ip:$ray_port"' in script
    command = next(line for line in script.splitlines() if "data_prep.py" in line)
    assert command.startswith('srun --overlap --nodes=1 --ntasks=1 -w "$ray_head" ')  # the command on the head
    wait = '"$ray_dir/wait.py" "$ray_head_ip:$ray_port" "${#ray_nodes[@]}"'
    assert script.index(head) < script.index(wait) < script.index(command)  # the command once every node joined
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def test_ray_port_without_a_profile_port_follows_the_job_id():
    """Two jobs whose heads share a host get different GCS ports, below Linux's ephemeral range."""
    from types import SimpleNamespace

    from nemotron_core.execution.backends.ray_slurm import cluster_lines
    from nemotron_core.execution.executors import JobOptions, JobPaths

    text = cluster_lines(SimpleNamespace(nemotron=JobOptions(launch="ray")), JobPaths(Path("/j"), "/j", "/j"),
                         code_root="/j/code")
    line = next(line for line in text.splitlines() if line.startswith("ray_port="))
    ports = {job: int(subprocess.run(["bash", "-c", f"SLURM_JOB_ID={job}; {line}; echo $ray_port"],
                                     capture_output=True, text=True, check=True).stdout)
             for job in (1, 2, 4999, 5000, 123456)}
    assert ports == {1: 20002, 2: 20004, 4999: 29998, 5000: 20000, 123456: 26912}, ports
