"""The Slurm executor without nemo-run (slurm_executor.py): the dry-run and the submit render one text,
the Slurm dry-run imports no nemo-run, and its fields and torchrun line are what nemo-run's own
SlurmExecutor and Torchrun launcher give for the same profile."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from nemotron_core.execution import JobState, create_executor, submit
from nemotron_core.execution.backends.slurm import render_job_script
from nemotron_core.profiles import parse_env_text
from nemotron_core.runspec import parse
from tests.execution.conftest import CLUSTER_TOML as CLUSTER
from tests.execution.conftest import RANKS_RECIPE, REPO, slurm_profile

HEAVY = ("nemo_run", "torchx", "fiddle", "leptonai", "torch")


def test_dry_run_text_is_what_submit_writes_for_the_same_job(slurm, stage):
    s = stage(RANKS_RECIPE, slurm_profile(ntasks_per_node=2), "slurm")
    dry = render_job_script(s.executor, s.plan, s.job_dir, content_key="same-job", flow_run_id="flow-1")
    job = submit(s.executor, s.plan, job_dir=s.job_dir, content_key="same-job", flow_run_id="flow-1")
    assert (s.job_dir / "sbatch.sh").read_text() == dry
    assert "--rdzv-id $SLURM_JOB_ID" in dry  # the same text every time it is rendered
    lines: list[str] = []
    status = job.wait(on_log=lines.append, timeout=180)
    assert status.state is JobState.COMPLETED, "\n".join(lines[-40:])
    assert sum("rank 0 of 2" in line for line in lines) == 1 and sum("rank 1 of 2" in line for line in lines) == 1


def test_slurm_dry_run_imports_no_nemo_run(tmp_path):
    """What `nemotron nano3 pretrain --run <slurm> --dry-run` loads: none of nemo-run's import chain."""
    (tmp_path / "env.toml").write_text(CLUSTER)
    code = ("import sys\nfrom nemotron_cli.app import main\nsys.argv = ['nemotron', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
            "sys.exit(code)\n")
    env = {**os.environ, "NEMOTRON_ENV_FILE": str(tmp_path / "env.toml"), "NEMOTRON_STATE_DIR": str(tmp_path / "s"),
           "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-c", code, "nano3", "pretrain", "-c", "tiny", "data_path=/lustre/data",
                        "--run", "cluster", "--dry-run"], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "HEAVY []" in p.stdout, p.stdout[-300:]
    assert "#SBATCH --nodes=2\n" in p.stdout and "--rdzv-endpoint $head_node_ip:29500" in p.stdout
    assert not (tmp_path / "s" / "jobs").exists() or not any((tmp_path / "s" / "jobs").rglob("*.yaml"))


@pytest.mark.parametrize("nodes,extra", [(1, ""), (2, "rdzv_port = 29611\nexclusive = true\nqos = \"high\"\n"),
                                         (4, "cpus_per_task = 6\nmem = \"0\"\nconstraint = \"h100\"\n")])
def test_fields_and_torchrun_line_match_nemo_runs_executor(state, nodes, extra):
    """The same profile through nemo-run's SlurmExecutor + Torchrun launcher (torchx), as the
    submit path did before: the #SBATCH fields and torchrun's own words are the same (its
    random rendezvous id aside)."""
    from nemotron_core.compat import import_nemo_run

    run = import_nemo_run()
    from nemo_run.run.torchx_backend.packaging import package

    prof = parse_env_text(CLUSTER.replace("nodes = 2", f"nodes = {nodes}") + extra).profile("cluster")
    ex = create_executor(prof, parse(REPO / RANKS_RECIPE))
    kwargs = {k: getattr(ex, k) for k in ("account", "partition", "nodes", "ntasks_per_node", "gpus_per_node",
                                          "time", "cpus_per_task", "mem", "qos", "gres", "constraint", "exclusive")}
    theirs = run.SlurmExecutor(**kwargs, launcher=run.Torchrun(rdzv_port=ex.rdzv_port), env_vars={},
                               tunnel=run.LocalTunnel(job_dir=str(state)))
    theirs.job_dir = str(state / "job")
    app = package("j", run.Script(path="SCRIPT", args=[], entrypoint="python"), theirs,
                  serialize_metadata_for_scripts=False)
    role = theirs.macro_values().apply(app.roles[0])
    words = [role.entrypoint, *role.args[:role.args.index("SCRIPT")]]
    at = words.index("--rdzv-id")
    assert words[:at + 1] + words[at + 2:] == [w for w in ex.torchrun_words() if w != "$SLURM_JOB_ID"]
    flags = {k: v for k, v in asdict(theirs).items() if v is not None and k in type(theirs).SBATCH_FLAGS}
    del flags["job_name"]  # the renderer writes the job's own name (sbatch_script.sbatch_flags)
    assert flags == ex.sbatch_fields()  # after the launcher set ntasks_per_node = 1
    assert role.env["LOGLEVEL"] == os.environ.get("LOGLEVEL", "INFO")


def test_the_ray_container_template_still_renders_through_nemo_run(state):
    """`launch = "ray"` in a container: nemo-run's RayJob template, fed our fields (to_nemo_run)."""
    from nemotron_core.launch import plan_job

    prof = parse_env_text(CLUSTER).profile("cluster")
    spec = parse(REPO / "recipes/nano3/stage0_pretrain/data_prep.py")
    ex = create_executor(prof, spec)
    job_dir = state / "jobs" / "prep" / "20261205-000000-abcdef"
    text = render_job_script(ex, plan_job(spec, prof, job_dir / "train.yaml"), job_dir)
    assert "ray start --head" in text and "#SBATCH --account=acct\n" in text and "#SBATCH --nodes=2\n" in text
    assert re.search(r"#SBATCH --comment='?nemotron:", text) and not (state / "jobs").exists()


def test_an_ssh_profile_keeps_its_tunnel_without_nemo_run(state):
    prof = parse_env_text('[c]\nexecutor = "slurm"\ntunnel = "ssh"\nhost = "login.invalid"\nuser = "me"\n'
                          'remote_job_dir = "/home/me/jobs"\n').profile("c")
    ex = create_executor(prof, parse(REPO / RANKS_RECIPE))
    assert (ex.tunnel.kind, ex.tunnel.host, ex.tunnel.user, ex.tunnel.job_dir) == ("ssh", "login.invalid", "me",
                                                                                   "/home/me/jobs")
    assert json.loads(json.dumps(ex.nemotron.ssh))["host"] == "login.invalid"
    assert not Path(state / "jobs").exists()
