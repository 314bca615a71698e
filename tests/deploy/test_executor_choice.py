"""The executor is chosen by configuration, and unknown names are refused."""

from __future__ import annotations

import pytest
from dagster import in_process_executor, multi_or_in_process_executor, multiprocess_executor
from dagster_k8s import k8s_job_executor

from clip_assets.deploy.executor_choice import EXECUTOR_ENV, executor_from_env


@pytest.mark.parametrize(
    ("name", "executor"),
    [
        ("in_process", in_process_executor),
        ("multiprocess", multiprocess_executor),
        ("k8s", k8s_job_executor),
        ("", multi_or_in_process_executor),
    ],
)
def test_each_name_picks_its_executor(name: str, executor) -> None:
    assert executor_from_env({EXECUTOR_ENV: name}) is executor


def test_unset_keeps_dagsters_default() -> None:
    assert executor_from_env({}) is multi_or_in_process_executor


def test_unknown_name_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="in_process, multiprocess, k8s"):
        executor_from_env({EXECUTOR_ENV: "celery"})
