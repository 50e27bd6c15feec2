"""deployments/prefect.yaml registers what the README says users type, on a real Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_prefect_yaml_registers_the_deployments_with_the_nightly_schedule(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(tmp_path / "home"),
           "NEMOTRON_ROOT": str(REPO), "NEMOTRON_NIGHTLY_CRON": "30 3 * * *", "NEMOTRON_NIGHTLY_TZ": "Europe/Paris"}
    for pool in ("nemotron-local", "nemotron-slurm"):
        subprocess.run([PREFECT, "work-pool", "create", pool, "--type", "process", "--overwrite"], env=env,
                       capture_output=True, text=True, timeout=120, check=True)
    out = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    code = (
        "from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as c:\n"
        "    for d in c.read_deployments():\n"
        "        flow = c.read_flow(d.flow_id)\n"
        "        sched = [(s.schedule.cron, s.schedule.timezone) for s in d.schedules]\n"
        "        print(f'{flow.name}/{d.name}|{d.work_pool_name}|{sched}|{d.parameters}|{d.pull_steps}')\n"
    )
    listing = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split("|")[0]: line.split("|")[1:] for line in listing.stdout.splitlines()}
    assert {"nano3-full/local", "nano3-full/slurm", "nano3-nightly-eval/nightly"} <= set(rows)
    assert rows["nano3-full/local"][0] == "nemotron-local"
    assert "'profile': 'local'" in rows["nano3-full/local"][2] and "'config': 'tiny'" in rows["nano3-full/local"][2]
    assert rows["nano3-full/slurm"][0] == "nemotron-slurm" and "'profile': 'slurm'" in rows["nano3-full/slurm"][2]
    assert rows["nano3-nightly-eval/nightly"][1] == "[('30 3 * * *', 'Europe/Paris')]"
    assert str(REPO) in rows["nano3-full/local"][3]  # the flow code runs from this checkout

    # `nemotron nano3 pipe --batch PROFILE` submits a flow run of nano3-full/PROFILE with its parameters
    nemotron = str(Path(sys.executable).with_name("nemotron"))
    out = subprocess.run([nemotron, "nano3", "pipe", "--batch", "local", "-c", "tiny", "--stages", "data_pretrain",
                          "pretrain.train.max_steps=5"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    run_id = out.stdout.split("(", 1)[1].split(")", 1)[0]
    code = (
        "import sys\n"
        "from prefect.client.orchestration import get_client\n"
        "with get_client(sync_client=True) as c:\n"
        "    r = c.read_flow_run(sys.argv[1])\n"
        "    print(c.read_deployment(r.deployment_id).name, r.parameters)\n"
        "    c.delete_flow_run(r.id)\n"  # no worker here: it would wait forever
    )
    shown = subprocess.run([sys.executable, "-c", code, run_id], env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("local ") and "'stages': ['data_pretrain']" in shown.stdout, shown.stdout
    assert "'overrides': {'pretrain': ['train.max_steps=5']}" in shown.stdout, shown.stdout
    assert f"/runs/flow-run/{run_id}" in out.stdout
    assert f"watch: nemotron nano3 watch {run_id}" in out.stdout.splitlines()  # fire and forget, watch later

    missing = subprocess.run([nemotron, "nano3", "pipe", "--batch", "nope"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "no deployment nano3-full/nope" in missing.stderr and "nano3-full/local" in missing.stderr
