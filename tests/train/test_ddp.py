"""Data-parallel PyTorch training over a real dask LocalCluster: 2 ranks reach the loss of 1."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.train import fit_data_parallel, run_data_parallel


def _task(n=4000, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5, 0.0], np.float32) + 0.3 + noise * rng.standard_normal(n).astype(np.float32)
    return X, y


def _rank_and_world(rank, world):
    import torch.distributed as dist

    t = torch.tensor([float(rank)])
    if world > 1:
        dist.all_reduce(t)
    return rank, world, float(t)


def test_every_worker_is_one_rank_of_one_group(client):
    res = run_data_parallel(client, _rank_and_world)
    assert res == [(0, 2, 1.0), (1, 2, 1.0)]  # the all-reduce summed both ranks
    assert run_data_parallel(None, _rank_and_world) == [(0, 1, 0.0)]


def test_two_workers_reach_the_loss_of_one(client):
    X, y = _task()
    factory = functools.partial(torch.nn.Linear, 4, 1)
    kw = dict(epochs=8, batch_size=256, learning_rate=0.05, seed=3)
    one = fit_data_parallel(None, factory, X, y, **kw)
    two = fit_data_parallel(client, factory, X, y, **kw)
    assert two.world_size == 2 and one.world_size == 1
    noise_var = 0.1**2
    assert one.losses[-1] < 1.5 * noise_var and two.losses[-1] < 1.5 * noise_var
    assert two.losses[-1] == pytest.approx(one.losses[-1], rel=0.1)
    w1, w2 = one.state_dict["weight"].numpy(), two.state_dict["weight"].numpy()
    np.testing.assert_allclose(w1, w2, atol=0.02)  # both found the known relation
    np.testing.assert_allclose(w1.ravel(), [1.0, -2.0, 0.5, 0.0], atol=0.02)


def test_batch_size_zero_is_a_config_error():
    X, y = _task(100)
    with pytest.raises(ConfigError, match="batch_size"):
        fit_data_parallel(None, functools.partial(torch.nn.Linear, 4, 1), X, y, epochs=1, batch_size=0,
                          learning_rate=0.1)


def _profiler_during_a_rank(rank, world):
    """On a worker: whether its profiler runs before, inside and after a training rank."""
    import time

    from distributed import get_worker

    from pipeline.train.ddp import _training_rank

    pcs = [pc for k, pc in get_worker().periodic_callbacks.items() if k in ("profile", "profile-cycle")]

    def running():
        time.sleep(0.3)  # the stop/start run on the worker's event loop
        return any(pc.is_running() for pc in pcs)

    before = running()
    with _training_rank():
        inside = running()
        with _training_rank():  # nested (or a second rank of the process): settings kept until the last ends
            pass
        still = running()
    return before, inside, still, running()


def test_training_rank_pauses_the_worker_profiler_and_restores_it(client):
    before, inside, still, after = run_data_parallel(client, _profiler_during_a_rank)[0]
    assert before and not inside and not still and after


def test_training_rank_outside_a_worker_changes_nothing(monkeypatch):
    from pipeline.train import ddp

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # glibc's dynamic thresholds are on here
    assert ddp._pause_worker_profiler() is None and ddp._glibc_training_heap() is None
    with ddp._training_rank():
        assert ddp._rank_users == 1 and ddp._rank_restore == []  # nothing to undo
    assert ddp._rank_users == 0
