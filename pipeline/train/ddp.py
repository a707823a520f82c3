"""PyTorch data-parallel training over a dask cluster: one ``DistributedDataParallel`` rank per worker.

The client starts one task per dask worker, pinned to it; every task joins one
``torch.distributed`` process group (``gloo`` on the CPU, ``nccl`` on GPUs) whose rendezvous is
a free TCP port on the first worker's host, runs the training function as its rank, and returns
its result. With one worker no process group is made: the function runs as rank 0 of 1. The
same code therefore runs on a ``LocalCluster``, a ``LocalCUDACluster`` (one worker per GPU) or
SLURM workers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from pipeline.errors import ConfigError

__all__ = ["DataParallelResult", "fit_data_parallel", "run_data_parallel"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _rank_main(fn, rank: int, world: int, addr: str, port: int, backend: str, args: tuple, timeout_s: float):
    import datetime

    import torch.distributed as dist

    dist.init_process_group(backend, init_method=f"tcp://{addr}:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    try:
        return fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def run_data_parallel(client, fn: Callable, *args, backend: str = "gloo", timeout_s: float = 300.0) -> list:
    """Run ``fn(rank, world_size, *args)`` on every worker of ``client``'s cluster as one DDP group.

    Parameters
    ----------
    client : distributed.Client or None
        The cluster's client; ``None`` runs ``fn(0, 1, *args)`` in this process.
    fn : callable
        The per-rank function; it must be importable by the workers (a module-level function).
    *args
        Passed to ``fn`` after the rank and world size (sent to every worker).
    backend : str
        ``gloo`` (CPU) or ``nccl`` (CUDA).
    timeout_s : float
        How long a rank waits for the others at the rendezvous and collectives.

    Returns
    -------
    list
        ``fn``'s result of every rank, in rank order.
    """
    if client is None:
        return [fn(0, 1, *args)]
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise ConfigError("the dask cluster has no workers; start it with cluster.n_workers >= 1")
    if len(workers) == 1:
        return [client.submit(fn, 0, 1, *args, workers=workers, pure=False).result()]
    host = urlparse(workers[0]).hostname or "127.0.0.1"
    port = client.submit(_free_port, workers=workers[:1], pure=False).result()
    futures = [client.submit(_rank_main, fn, rank, len(workers), host, port, backend, args, timeout_s,
                             workers=[w], allow_other_workers=False, pure=False)
               for rank, w in enumerate(workers)]
    return client.gather(futures)


@dataclass
class DataParallelResult:
    """What :func:`fit_data_parallel` returns from rank 0."""

    state_dict: dict
    losses: list[float]
    samples_per_second: float
    world_size: int


def _fit_rank(rank: int, world: int, module_factory, X: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
              learning_rate: float, seed: int, device: str) -> DataParallelResult | None:
    import time

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    torch.set_num_threads(1)
    module = module_factory().to(device)  # a dask-cuda worker sees its one GPU as "cuda"
    model = DistributedDataParallel(module) if world > 1 else module
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    gen = torch.Generator().manual_seed(seed)
    n = X.shape[0]
    Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.float32, device=device)
    # every rank takes its share of each global batch, so that 1 and N ranks follow the same
    # optimisation path: a global batch of `batch_size` rows per step, the gradient averaged
    per_rank = max(1, batch_size // world)
    losses, t0, seen = [], time.perf_counter(), 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size][rank * per_rank:(rank + 1) * per_rank]
            if idx.numel() == 0:
                idx = perm[start:start + 1]  # keep every rank in step (DDP needs a backward per rank)
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(Xt[idx]).squeeze(-1), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
            seen += idx.numel()
        stats = torch.tensor([total, float(count)], device=device)
        if world > 1:
            dist.all_reduce(stats)
        losses.append(float(stats[0] / stats[1]))
    rate = seen / max(time.perf_counter() - t0, 1e-9)
    if world > 1:
        r = torch.tensor([rate], device=device)
        dist.all_reduce(r)
        rate = float(r)
    if rank != 0:
        return None
    return DataParallelResult({k: v.detach().cpu().clone() for k, v in module.state_dict().items()}, losses, rate, world)


def fit_data_parallel(client, module_factory: Callable, X, y, *, epochs: int, batch_size: int,
                      learning_rate: float, seed: int = 0, backend: str = "gloo",
                      device: str | None = None) -> DataParallelResult:
    """Fit a regression module with mean-squared error, data-parallel over the cluster's workers.

    Parameters
    ----------
    client : distributed.Client or None
        The cluster (``None``: one process, here).
    module_factory : callable
        Returns a new ``torch.nn.Module`` (module-level, importable by the workers).
    X, y : numpy.ndarray
        Inputs (rows, features) and targets (rows,).
    epochs, batch_size, learning_rate, seed
        The optimisation: Adam, ``batch_size`` rows per step over all ranks together.
    backend : str
        ``gloo`` or ``nccl``.
    device : str, optional
        Where each rank computes: ``cuda`` (its worker's GPU) or ``cpu``; default ``cuda`` with
        nccl, else ``cpu``.

    Returns
    -------
    DataParallelResult
        Rank 0's weights, the mean training loss of every epoch, the samples per second of all
        ranks together and the world size.
    """
    if batch_size < 1:
        raise ConfigError(f"training.batch_size must be >= 1, got {batch_size}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    results = run_data_parallel(client, _fit_rank, module_factory, X, y, int(epochs), int(batch_size),
                                float(learning_rate), int(seed), device or ("cuda" if backend == "nccl" else "cpu"),
                                backend=backend)
    return results[0]
