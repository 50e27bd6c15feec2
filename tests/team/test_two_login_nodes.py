"""Two workers on two "login nodes": their own state folders, one artifact registry, one Slurm cluster.

Both flow runs reach the same pretrain stage at once. The content-key lock lives in the shared
registry (tasks/locks.py), so one of them submits the Slurm job and the other waits, then finds
the published version: one job in Slurm, one artifact version, the same ref for both.
"""

from __future__ import annotations

import pytest

from tests.flows.helpers import REPO, flow_result, flow_state, run_flow, start_flow
from tests.flows.test_slurm_flow import FAST, SlurmWatch
from tests.team.helpers import team_env

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(not (REPO / "recipes/nano3/stage0_pretrain/train.py").is_file(),
                                 reason="needs the data prep and pretrain recipes")]


def _node_env(server, cluster, state, shared, home):
    env_file = state / "env.toml"
    state.mkdir(parents=True, exist_ok=True)
    env_file.write_text('[slurm]\nexecutor = "slurm"\ncontainer_image = ""\npartition = "debug"\n'
                        f'time = "00:20:00"\nntasks_per_node = 1\ngpus_per_node = 0\nslurm_conf = "{cluster.conf}"\n'
                        f'[artifacts]\nroot = "{shared}"\n')
    return {**home, **team_env(server.env, state / "prefect"), "NEMOTRON_STATE_DIR": str(state),
            "NEMOTRON_ENV_FILE": str(env_file), "SLURM_CONF": str(cluster.conf)}


def test_two_workers_with_their_own_state_folders_submit_a_stage_once(prefect_server_postgres, slurm_cluster):
    server = prefect_server_postgres
    with flow_state(server.api_url, "ln") as (root, base):
        shared = root / "shared-registry"
        nodes = [_node_env(server, slurm_cluster, root / name, shared, base) for name in ("node1", "node2")]
        run_flow(nodes[0], profile="slurm", stages=["data_pretrain"])  # the pretrain data, in the shared registry
        params = dict(profile="slurm", stages=["pretrain"], overrides={"pretrain": [*FAST["pretrain"], "seed=47"]})
        logs = [root / f"node{i}.log" for i in (1, 2)]
        with SlurmWatch(slurm_cluster) as watch:
            procs = [start_flow(env, log, **params) for env, log in zip(nodes, logs)]
            results = [flow_result(p, log) for p, log in zip(procs, logs)]
        assert results[0]["pretrain"] == results[1]["pretrain"]
        from nemotron_core.artifacts import open_registry

        version = open_registry({"root": str(shared)}).resolve(results[0]["pretrain"])
        key = version.metadata["content_key"]
        assert len(watch.jobs_for(key)) == 1, watch.seen  # one sbatch for the two flow runs
        assert [v.ref for v in open_registry({"root": str(shared)}).list(version.name)] == [version.ref]
        assert not (shared / ".locks" / f"{key}.lock").exists()  # released
