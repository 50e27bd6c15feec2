"""SIGKILL the trainer at random steps: every rerun resumes to the reference's final loss, bit for bit.

Here: 2 kills (one seeded random step in each half of the run); `-m slow` and
benchmarks/kill_resume.py: 20. What the trainer must survive is in tests/reliability/killing.py.
"""

from __future__ import annotations

import random

import pytest

from tests.reliability import killing
from tests.reliability.conftest import clean_env


@pytest.fixture(scope="module")
def reference(reliability_dir, pretrain_data):
    return killing.reference(pretrain_data, reliability_dir / "kill-reference", clean_env())


def _trials(reliability_dir, pretrain_data, reference, steps: list[int]) -> None:
    results = [killing.trial(pretrain_data, reliability_dir / f"kill-{i}-at-{s}", reference, s, clean_env())
               for i, s in enumerate(steps)]
    assert [t.detail for t in results if not t.same] == []
    assert sum(t.same for t in results) == len(steps)
    # the kills landed where chosen (the run was not over); each rerun started from a checkpoint next to
    # the kill, not from scratch (a kill inside a save falls back one checkpoint)
    every = killing.CHECKPOINT
    for t in results:
        assert t.kill_at <= t.killed_after < killing.STEPS
        assert t.resumed_from % every == 0 and abs(t.resumed_from - t.killed_after) <= every, t


def test_sigkill_at_random_steps_resumes_to_the_same_final_loss(reliability_dir, pretrain_data, reference):
    rng = random.Random(3)
    half = killing.STEPS // 2
    _trials(reliability_dir, pretrain_data, reference, [rng.randrange(1 + k * half, (k + 1) * half) for k in range(2)])


@pytest.mark.slow
def test_sigkill_at_20_random_steps(reliability_dir, pretrain_data, reference):
    rng = random.Random(20)
    _trials(reliability_dir, pretrain_data, reference, [rng.randrange(1, killing.STEPS) for _ in range(20)])
