"""Several `prefect worker` processes on one work pool of the team server: each flow run runs once."""

from __future__ import annotations

from collections import Counter

from tests.team.helpers import deploy_hello, run_deployment, start_worker, stop_worker, team_env, unique, wait_final


def test_each_flow_run_is_picked_up_by_exactly_one_of_two_workers(prefect_server_postgres, tmp_path):
    env = team_env(prefect_server_postgres.env, tmp_path / "home")
    pool = unique("two")
    name = deploy_hello(env, tmp_path / "code", pool)
    record = tmp_path / "ran.txt"
    ids = [run_deployment(env, name, x=i, sleep=1.0, record=str(record)) for i in range(6)]
    workers = [start_worker(env, pool, tag, tmp_path / f"worker-{tag}.log") for tag in ("login1", "login2")]
    try:
        states = wait_final(env, ids)
    finally:
        for worker in workers:
            stop_worker(worker)
    assert set(states.values()) == {"COMPLETED"}, states
    ran = [line.split() for line in record.read_text().splitlines()]
    assert Counter(run_id for run_id, _ in ran) == Counter(ids)  # each exactly once
    assert {tag for _, tag in ran} <= {"login1", "login2"}


def test_a_deployment_concurrency_limit_holds_across_workers(prefect_server_postgres, tmp_path):
    """`prefect deploy --concurrency-limit 1`: two workers, three runs, never two at once.

    The server takes the deployment's slot when a run moves to Pending (one conditional UPDATE),
    so two workers polling in the same second cannot both start a run. A work-pool limit would not
    do: the server counts the pool's Pending/Running runs when a worker polls, and two workers
    polling at once each see a free slot (it failed this test in CI that way).
    """
    env = team_env(prefect_server_postgres.env, tmp_path / "home")
    pool = unique("one")
    name = deploy_hello(env, tmp_path / "code", pool, concurrency=1)
    record = tmp_path / "ran.txt"
    ids = [run_deployment(env, name, x=i, sleep=2.0, record=str(record)) for i in range(3)]
    workers = [start_worker(env, pool, tag, tmp_path / f"worker-{tag}.log") for tag in ("login1", "login2")]
    try:
        states = wait_final(env, ids)
    finally:
        for worker in workers:
            stop_worker(worker)
    assert set(states.values()) == {"COMPLETED"}, states
    events = [line.split() for line in (tmp_path / "ran.txt.events").read_text().splitlines()]
    # start a, end a, start b, end b, ...: each run ends before the next one starts
    assert [kind for kind, _ in events] == ["start", "end"] * 3, events
    assert all(events[i][1] == events[i + 1][1] for i in range(0, 6, 2)), events
