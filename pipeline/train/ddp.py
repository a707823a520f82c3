"""PyTorch data-parallel training over a dask cluster: one ``DistributedDataParallel`` rank per worker.

The client starts one task per dask worker, pinned to it; every task joins one
``torch.distributed`` process group (``gloo`` on the CPU, ``nccl`` on GPUs) whose rendezvous is
a free TCP port on the first worker's host, runs the training function as its rank, and returns
its result. With one worker no process group is made: the function runs as rank 0 of 1. The
same code therefore runs on a ``LocalCluster``, a ``LocalCUDACluster`` (one worker per GPU) or
SLURM workers.

:func:`fit_data_parallel` fits a bare regression module (mean-squared error, fixed epochs: the
scaling benchmark); the models of :mod:`pipeline.models.deep` are fitted by their own epoch loop
on every rank (:func:`_fit_deep_model`, used by :func:`pipeline.train.fit_on_cluster`), with
validation, early stopping, checkpoints and resume. Events the ranks send (one per epoch) reach
the caller while they run, through the scheduler's event log (:class:`EventRelay`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from pipeline.errors import ConfigError
from pipeline.runtime import set_mmap_threshold, trim_heap

__all__ = ["DataParallelResult", "EventRelay", "fit_data_parallel", "run_data_parallel"]

#: seconds between two looks at the ranks' events while they run
EVENT_POLL_S = 0.2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


class EventRelay:
    """A picklable ``emit(event)`` for code running on a dask worker: the event reaches the client.

    On a worker, the event (a dict of plain values) is logged to the scheduler under
    :attr:`topic`; :func:`run_data_parallel` reads the topic while the ranks run and passes every
    event to its ``on_event``, in order. Outside a worker (no cluster) the event goes to
    ``local`` directly.

    Parameters
    ----------
    topic : str, optional
        The event topic (default: a new unique one).
    local : callable, optional
        Called with the event when not running on a worker.
    """

    def __init__(self, topic: str | None = None, local: Callable[[dict], None] | None = None):
        self.topic = topic or f"terrascale-events-{uuid.uuid4().hex}"
        self.local = local

    def __getstate__(self):
        return {"topic": self.topic, "local": None}  # a client-side callback never travels

    def __call__(self, event: dict) -> None:
        # msgpack-able: NumPy scalars become Python numbers
        plain = json.loads(json.dumps(event, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
        try:
            from distributed import get_worker

            worker = get_worker()
        except (ImportError, ValueError):
            worker = None
        if worker is not None:
            # wrapped: the scheduler stamps a logged dict with the worker's address
            worker.log_event(self.topic, {"event": plain})
        elif self.local is not None:
            self.local(plain)


def _relay_events(client, futures: list, topic: str, on_event: Callable[[dict], None]) -> None:
    """Pass the events of ``topic`` to ``on_event`` until every future is finished."""
    seen = 0
    while True:
        # finished before reading: a worker sends its events before the task's end, on the same stream
        finished = all(f.done() for f in futures)
        events = client.get_events(topic)
        for _, msg in list(events)[seen:]:
            on_event(msg["event"])
        seen = len(events)
        if finished or any(f.status == "error" for f in futures):
            return
        time.sleep(EVENT_POLL_S)


def _rank_main(fn, rank: int, world: int, addr: str, port: int, backend: str, args: tuple, timeout_s: float,
               kwargs: dict | None = None):
    import datetime

    import torch.distributed as dist

    dist.init_process_group(backend, init_method=f"tcp://{addr}:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    try:
        return fn(rank, world, *args, **(kwargs or {}))
    finally:
        dist.destroy_process_group()


def run_data_parallel(client, fn: Callable, *args, backend: str = "gloo", timeout_s: float = 300.0,
                      on_event: Callable[[dict], None] | None = None) -> list:
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
    on_event : callable, optional
        Then ``fn`` is called with the keyword ``emit``, an :class:`EventRelay`: every dict a rank
        passes to ``emit`` is passed to ``on_event`` here, in this thread, while the ranks run.

    Returns
    -------
    list
        ``fn``'s result of every rank, in rank order.
    """
    relay = EventRelay(local=on_event) if on_event is not None else None
    kwargs = {"emit": relay} if relay is not None else {}
    if client is None:
        return [fn(0, 1, *args, **kwargs)]
    workers = _workers(client)
    if len(workers) == 1:
        futures = [client.submit(fn, 0, 1, *args, **kwargs, workers=workers, pure=False)]
    else:
        host = urlparse(workers[0]).hostname or "127.0.0.1"
        port = client.submit(_free_port, workers=workers[:1], pure=False).result()
        futures = [client.submit(_rank_main, fn, rank, len(workers), host, port, backend, args, timeout_s, kwargs,
                                 workers=[w], allow_other_workers=False, pure=False)
                   for rank, w in enumerate(workers)]
    try:
        if relay is not None:
            _relay_events(client, futures, relay.topic, on_event)
        return client.gather(futures)
    except BaseException:
        client.cancel(futures)  # an interrupt or a failed rank: no rank keeps training for nobody
        raise


def _workers(client) -> list[str]:
    """The addresses of the cluster's workers, sorted (rank order)."""
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise ConfigError("the dask cluster has no workers; start it with cluster.n_workers >= 1")
    return workers


#: glibc's default mmap threshold, and the most its dynamic threshold grows to on a 64-bit build
#: (``DEFAULT_MMAP_THRESHOLD_MIN``, ``DEFAULT_MMAP_THRESHOLD_MAX``)
_GLIBC_MMAP_MIN, _GLIBC_MMAP_MAX = 128 * 1024, 32 * 1024 * 1024
_rank_lock = threading.Lock()
_rank_users = 0
_rank_restore: list[Callable[[], None]] = []


def _glibc_training_heap() -> Callable[[], None] | None:
    """Let glibc keep a training step's tensors on the heap; return the undo, or ``None`` if nothing was done.

    A dask nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (distributed's
    ``nanny.pre-spawn-environ``, so that idle workers hand memory back). Setting it switches off
    glibc's dynamic mmap threshold, which stays at 128 KiB: every activation or gradient of a batch
    (2048 rows x 128 floats is 1 MiB) is then a fresh ``mmap`` whose pages are faulted in and
    zeroed, and unmapped again, at every step. Profiled on the benchmark's MLP, that doubled the time
    of a step on a worker against the same loop in a plain process, and two such ranks on a
    two-core VM slowed each other further. For the rank's duration the thresholds are put where
    glibc's own dynamic rule would take them (mmap threshold at its 64-bit maximum, trim threshold
    twice that); afterwards they are set back to what the environment asked for and the heap is
    trimmed, so the worker still returns the memory once training is done.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or sys.maxsize <= 2**32:
        return None  # glibc's dynamic thresholds are on (nothing to undo), or a 32-bit build
    try:
        trim_env = int(os.environ["MALLOC_TRIM_THRESHOLD_"])
        mmap_env = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _GLIBC_MMAP_MIN))
    except ValueError:
        return None
    if not set_mmap_threshold(_GLIBC_MMAP_MAX, 2 * _GLIBC_MMAP_MAX):
        return None  # not glibc

    def undo() -> None:
        set_mmap_threshold(mmap_env, trim_env)
        trim_heap()

    return undo


def _pause_worker_profiler() -> Callable[[], None] | None:
    """Stop the dask worker's statistical profiler while a rank trains; return the undo (``None``: not on a worker).

    The worker samples the stack of its running tasks every 10 ms
    (``distributed.worker.profile.interval``) on its event loop, under the GIL. For a rank that
    runs for the whole training the samples say nothing the rank's own timings do not, and on a
    machine with as many ranks as cores they take CPU from the ranks: profiled, about 1.7 ms of the
    event loop's CPU per 25 ms training step, stalls that the gradient all-reduce then passes on to
    the other ranks.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    callbacks = [pc for key, pc in getattr(worker, "periodic_callbacks", {}).items()
                 if key in ("profile", "profile-cycle") and pc.is_running()]
    for pc in callbacks:
        worker.loop.add_callback(pc.stop)  # tornado's callbacks belong to the event loop's thread

    def undo() -> None:
        for pc in callbacks:
            worker.loop.add_callback(lambda pc=pc: pc.is_running() or pc.start())

    return undo


@contextlib.contextmanager
def _training_rank():
    """The process settings of a training rank on a dask worker, undone when the last rank of the process ends.

    See :func:`_glibc_training_heap` and :func:`_pause_worker_profiler`: both remove per-step
    overheads that a dask worker adds to a torch training loop (they apply to any number of
    ranks, one included, so a rank measures the same loop whatever the world size).
    """
    global _rank_users
    with _rank_lock:
        if _rank_users == 0:
            _rank_restore[:] = [u for u in (_glibc_training_heap(), _pause_worker_profiler()) if u is not None]
        _rank_users += 1
    try:
        yield
    finally:
        with _rank_lock:
            _rank_users -= 1
            if _rank_users == 0:
                for undo in _rank_restore:
                    undo()
                _rank_restore.clear()


@dataclass
class DataParallelResult:
    """What :func:`fit_data_parallel` returns from rank 0."""

    state_dict: dict
    losses: list[float]
    samples_per_second: float
    world_size: int


def _fit_rank(rank: int, world: int, *args) -> DataParallelResult | None:
    """One rank of :func:`fit_data_parallel`, with a training rank's process settings (:func:`_training_rank`)."""
    with _training_rank():
        return _fit_rank_steps(rank, world, *args)


def _fit_rank_steps(rank: int, world: int, module_factory, X: np.ndarray, y: np.ndarray, epochs: int,
                    batch_size: int, learning_rate: float, seed: int, device: str) -> DataParallelResult | None:
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


def _worker_threads() -> int:
    """Threads of the dask worker running this task (1 outside a worker)."""
    try:
        from distributed import get_worker

        return max(int(get_worker().state.nthreads), 1)
    except (ImportError, ValueError, AttributeError):
        return 1


def _fit_deep_rank(rank: int, world: int, model, X, y, X_valid, y_valid, emit=None) -> dict | None:
    """One rank of :func:`_fit_deep_model`: the model's own fit on this rank's share of every batch."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(_worker_threads())  # the worker's threads, not the machine's cores
    try:
        model.data_parallel = (rank, world)
        model.progress = None
        model.on_epoch = emit if rank == 0 else None
        with _training_rank():
            model.fit(X, y, X_valid=X_valid, y_valid=y_valid)
    finally:
        torch.set_num_threads(before)
    return model.trained_state() if rank == 0 else None


def _fit_deep_model(client, model, X, y, *, X_valid=None, y_valid=None,
                    on_event: Callable[[dict], None] | None = None, timeout_s: float = 1800.0) -> int:
    """Fit a deep table model (:class:`~pipeline.models.deep.mlp.MLPModel`) data-parallel: one rank per worker.

    Every rank receives the table once (scattered to every worker), fits the same encoding on it
    and runs the model's epoch loop on its share of every global batch
    (:attr:`~pipeline.models.deep.DeepModel.data_parallel`); rank 0 checkpoints, reports the
    epochs (``on_event``, here, while they run) and returns the trained state, which ``model``
    then adopts (:meth:`~pipeline.models.deep.DeepModel.adopt_trained_state`).

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    model : DeepModel
        Created and configured (training settings, checkpoint directory), not necessarily fitted.
    X, y, X_valid, y_valid
        As for ``model.fit``.
    on_event : callable, optional
        Called here with every epoch's event (see :attr:`~pipeline.models.deep.DeepModel.on_epoch`).
    timeout_s : float
        How long a rank waits for the others (a collective or the rendezvous).

    Returns
    -------
    int
        The number of ranks.
    """
    t0 = time.perf_counter()
    workers = _workers(client)
    remote = copy.copy(model)
    remote.progress = remote.on_epoch = None  # client-side callbacks stay here
    remote.history = []
    remote.net = None  # the ranks build and train their own network
    backend = "nccl" if str(model.device).startswith("cuda") else "gloo"
    inputs = [X, np.asarray(y), X_valid, None if y_valid is None else np.asarray(y_valid)]
    present = [i for i, v in enumerate(inputs) if v is not None]
    # one copy per worker, not one per task in the graph
    scattered = client.scatter([inputs[i] for i in present], broadcast=True, hash=False)
    for i, fut in zip(present, scattered):
        inputs[i] = fut
    # the scattered inputs are released when their futures go out of scope
    results = run_data_parallel(client, _fit_deep_rank, remote, *inputs, backend=backend, timeout_s=timeout_s,
                                on_event=on_event)
    model.adopt_trained_state(results[0], fit_seconds=time.perf_counter() - t0)
    return len(workers)
