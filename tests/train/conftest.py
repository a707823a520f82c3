"""A real dask LocalCluster of two worker processes for the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def client():
    """A client of a 2-worker, 1-thread-each LocalCluster (processes, like a real run).

    Shared by the session: the workers start, import torch and xgboost, and stop once.
    """
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        with distributed.Client(cl) as c:
            yield c
