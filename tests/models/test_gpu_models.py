"""The models on a CUDA GPU (``gpu``-marked: skipped without one): the same answers as on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config.models import MLPParams, RandomForestParams, XGBoostParams
from pipeline.models import model_class
from tests.helpers.synthetic_tasks import make_lai_task, make_lulc_task, rmse

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def lai():
    return make_lai_task(n_parents=200)


def test_xgboost_on_cuda_matches_the_cpu(lai):
    params = XGBoostParams(n_estimators=50, max_depth=6, early_stopping_rounds=None)
    cls = model_class("xgboost")
    cpu = cls(lai.spec, params, device="cpu").fit(lai.X_train, lai.y_train)
    gpu = cls(lai.spec, params, device="cuda").fit(lai.X_train, lai.y_train)
    assert rmse(gpu.predict(lai.X_test), lai.y_test) == pytest.approx(rmse(cpu.predict(lai.X_test), lai.y_test), rel=0.05)


def test_cuml_random_forest_is_close_to_scikit_learn(lai):
    params = RandomForestParams(n_estimators=30, max_depth=10)
    cls = model_class("random_forest")
    cpu = cls(lai.spec, params, device="cpu").fit(lai.X_train, lai.y_train)
    gpu = cls(lai.spec, params, device="cuda").fit(lai.X_train, lai.y_train)
    assert rmse(gpu.predict(lai.X_test), lai.y_test) <= 1.1 * rmse(cpu.predict(lai.X_test), lai.y_test)


def test_mlp_trains_on_cuda_and_keeps_the_constraint():
    task = make_lulc_task(n_parents=100)
    model = model_class("mlp")(task.spec, MLPParams(hidden=[32]), device="cuda")
    model.configure_training(max_epochs=2, batch_size=512)
    prob = model.fit(task.X_train, task.y_train).predict(task.X_test)
    np.testing.assert_allclose(prob.sum(1), 1, atol=1e-6)


def test_ddp_over_a_local_cuda_cluster_with_nccl():
    import functools

    import torch
    from dask_cuda import LocalCUDACluster
    from distributed import Client

    from pipeline.train import fit_data_parallel

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 4)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5, 0.0], np.float32)
    with LocalCUDACluster() as cluster, Client(cluster) as client:
        res = fit_data_parallel(client, functools.partial(torch.nn.Linear, 4, 1), X, y, epochs=5, batch_size=256,
                                learning_rate=0.05, backend="nccl", device="cuda")
    assert res.losses[-1] < res.losses[0]
