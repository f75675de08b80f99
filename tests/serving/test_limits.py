"""One `engage serve` worker's limits (serving/limits.py) and the CPUs workers are sized by."""

from __future__ import annotations

import os

import pytest

from serving.limits import ServerLimits, machine_cpus


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_body_bytes", 0),  # every size, time and concurrency must be positive
        ("request_timeout", -1.0),
        ("light_concurrency", 0),
        ("heavy_queue", -1),  # no queue at all is allowed, a negative one is not
    ],
)
def test_limits_that_cannot_work_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        ServerLimits(**{field: value})


def test_no_heavy_queue_is_a_limit_that_works():
    assert ServerLimits(heavy_queue=0).heavy_queue == 0


def test_limits_reach_the_workers_through_the_environment_unchanged():
    limits = ServerLimits(max_body_bytes=1024, request_timeout=2.5, heavy_queue=0)
    assert ServerLimits.from_env(limits.to_env()) == limits
    assert ServerLimits.from_env(None) == ServerLimits() == ServerLimits.from_env("")


def test_machine_cpus_are_the_ones_this_process_may_run_on():
    cpus = machine_cpus()
    assert 1 <= cpus <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cpus == len(os.sched_getaffinity(0))
