"""A subset of tests/flows, run again against the team server: PostgreSQL behind it, basic auth in front.

The flow tests run against the quickstart's SQLite server; these run the cheap ones (registering
deployments, a stage subset of nano3-full with its cache, a failure that must not be retried)
against `prefect_server_postgres`, unchanged: the test process carries the server's auth string
in its environment, so every flow subprocess and `prefect` command the tests start carries it too.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.flows import test_deployments, test_retry_resume
from tests.flows.helpers import REPO, flow_state, job_dirs, run_flow

NEEDS_RECIPES = pytest.mark.skipif(not (REPO / "recipes/nano3/stage0_pretrain/train.py").is_file(),
                                   reason="needs the data prep and pretrain recipes")


@pytest.fixture(scope="module")
def on_postgres(prefect_server_postgres) -> Iterator[str]:
    """The team server's API URL, with its auth string in this process's environment while the module runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_API_AUTH_STRING", prefect_server_postgres.env["PREFECT_API_AUTH_STRING"])
        yield prefect_server_postgres.api_url


@pytest.fixture(scope="module")
def pipeline(on_postgres):
    """One state folder with the pretrain data, built by a nano3-full run against the team server."""
    with flow_state(on_postgres, "pgf") as (state, env):
        first = run_flow(env, stages=["data_pretrain"])
        yield state, env, first


def test_prefect_yaml_registers_the_deployments(on_postgres, tmp_path):
    test_deployments.test_prefect_yaml_registers_the_deployments_with_the_nightly_schedule(on_postgres, tmp_path)


def _rerun_is_a_cache_hit(state, env, first):
    before = job_dirs(state)
    again = run_flow(env, stages=["data_pretrain"])
    assert again["data_pretrain"] == first["data_pretrain"] == "nano3-pretrain-data:v1"
    assert job_dirs(state) == before  # no job submitted: the cached result came back from PostgreSQL-backed state


def _user_error_is_not_retried(state, env, first):
    test_retry_resume.test_a_user_error_is_not_retried((state, env))


@NEEDS_RECIPES
@pytest.mark.parametrize("check", [_rerun_is_a_cache_hit, _user_error_is_not_retried], ids=lambda f: f.__name__[1:])
def test_nano3_full_stage_subset(pipeline, check):
    state, env, first = pipeline
    check(state, env, first)
