import importlib.util

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.runners import make_task_runner


def test_threads_is_the_default_runner():
    runner = make_task_runner()
    assert isinstance(runner, ThreadPoolTaskRunner)


def test_unknown_runner_lists_the_choices():
    with pytest.raises(ValueError, match="unknown task runner 'slurm'; known: dask, ray, threads"):
        make_task_runner("slurm")


@pytest.mark.parametrize("kind, module", [("dask", "prefect_dask"), ("ray", "prefect_ray")])
def test_cluster_runners_need_their_extra(kind, module):
    if importlib.util.find_spec(module) is not None:
        assert make_task_runner(kind, address="tcp://127.0.0.1:8786") is not None
    else:
        with pytest.raises(ImportError, match=rf"\.\[{kind}\]"):
            make_task_runner(kind)
