"""The single-process training loop of the deep models: Adam, early stopping, checkpoints, resume.

Determinism: the weights' initialisation is the caller's (seeded); shuffling draws from a
``torch.Generator`` seeded with ``seed``, and the global RNG (dropout) is seeded with ``seed`` inside
:func:`torch.random.fork_rng`, so training leaves the process's own random state untouched. Every
state that the next epoch depends on (weights, optimiser, both RNG states, best score and weights,
epochs without improvement) goes into the checkpoint, so a run killed after an epoch and resumed
ends with the same weights as an uninterrupted one (bit for bit on the CPU; on a GPU as far as
its kernels are deterministic).

Checkpoints are a dict of tensors and plain values written with :func:`torch.save` to a temporary
file then renamed over ``checkpoint.pt`` (never a half-written file), and read back with
``torch.load(..., weights_only=True)``: nothing is unpickled.

Data parallel
    With ``world_size > 1`` (inside a ``torch.distributed`` process group, one rank per dask worker:
    :func:`pipeline.train.run_data_parallel`) the same loop runs on every rank: the batch
    factories (:func:`row_batches`, :func:`block_batches` with ``rank``/``world_size``) give each
    rank its share of every global batch of ``batch_size`` rows, the module is wrapped in
    ``DistributedDataParallel`` (gradients averaged), the losses and the validation score are
    summed over the ranks, so that every rank takes the same early-stopping decision. Only rank 0
    reads and writes the checkpoint (its content is broadcast to the others on resume) and calls
    ``progress``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pipeline.errors import ConfigError, InputDataError

__all__ = ["CHECKPOINT_FILE", "TrainResult", "ValidScore", "block_batches", "load_checkpoint", "row_batches",
           "train_epochs"]

#: the checkpoint's file name inside ``checkpoint_dir``
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class TrainResult:
    """What :func:`train_epochs` did.

    Attributes
    ----------
    epochs : int
        Epochs completed, including those of a resumed checkpoint.
    best_epoch : int
        Epoch (1-based) whose weights were kept (the last one without a validation set).
    best_loss : float
        Its validation loss (training loss without a validation set).
    stopped_early : bool
        The validation loss stopped improving for ``early_stopping_patience`` epochs.
    resumed_from : int
        Epochs read from a checkpoint (0: a fresh start).
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``valid_loss`` (or None), and ``valid_score`` when a
        :class:`ValidScore` was given and there is validation data.
    """

    epochs: int = 0
    best_epoch: int = 0
    best_loss: float = math.inf
    stopped_early: bool = False
    resumed_from: int = 0
    history: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ValidScore:
    """A validation score reported every epoch besides the validation loss (e.g. accuracy, RMSE).

    The score is ``finish(sum of the batches' first values / sum of their second values)``, the
    sums running over the validation batches (and over the ranks when data-parallel).

    Attributes
    ----------
    name : str
        What it is (``accuracy``, ``rmse``), for the progress display.
    batch : callable
        ``batch(module, batch) -> (sum, count)`` of one validation batch (floats or 0-d tensors),
        called without gradients.
    finish : callable, optional
        Applied to the mean (``math.sqrt`` turns a mean squared error into an RMSE).
    """

    name: str
    batch: Callable[[torch.nn.Module, Any], tuple]
    finish: Callable[[float], float] | None = None


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} of world size {world_size}: need 0 <= rank < world_size")


def row_batches(tensors: tuple, batch_size: int, *, shuffle: bool = True, rank: int = 0,
                world_size: int = 1) -> Callable:
    """A batch factory over row-aligned tensors: random row batches (or in order for validation).

    Parameters
    ----------
    tensors : tuple of torch.Tensor
        Tensors sharing their first dimension.
    batch_size : int
        Rows per (global) batch (the last one smaller).
    shuffle : bool
        Draw a new permutation every epoch from the loop's generator.
    rank, world_size : int
        Data-parallel training: every rank draws the same permutation and takes its near-equal
        contiguous share of each global batch (possibly empty: every rank yields as many batches).

    Returns
    -------
    callable
        ``factory(generator, epoch) -> iterator of tuples of tensors``.
    """
    _check_rank(rank, world_size)
    n = tensors[0].shape[0]

    def factory(generator, epoch):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for lo in range(0, n, batch_size):
            idx = order[lo:lo + batch_size]
            if world_size > 1:
                idx = torch.tensor_split(idx, world_size)[rank]
            idx = idx.to(tensors[0].device)
            yield tuple(t[idx] for t in tensors)

    return factory


def block_batches(tensors: tuple, block: np.ndarray, batch_size: int, *, shuffle: bool = True, rank: int = 0,
                  world_size: int = 1) -> Callable:
    """A batch factory that keeps blocks (coarse cells) whole: the constraint layers need them.

    Blocks are shuffled, then taken in turn until a batch holds at least ``batch_size`` rows (a
    block larger than ``batch_size`` is a batch of its own).

    Parameters
    ----------
    tensors : tuple of torch.Tensor
        Row-aligned tensors.
    block : numpy.ndarray
        (n,) block index of every row, in 0..n_blocks-1.
    batch_size : int
        Target rows per batch.
    shuffle : bool
        Shuffle the blocks every epoch.
    rank, world_size : int
        Data-parallel training: the blocks of each global batch are dealt to the ranks by their
        running row count (whole blocks, about equal rows; a rank's share may be empty, every
        rank yields as many batches).

    Returns
    -------
    callable
        ``factory(generator, epoch)`` yielding ``(*tensors[rows], local_block, blocks)``: the rows'
        block index within the batch (0..m-1, long) and the global index of those m blocks.
    """
    _check_rank(rank, world_size)
    block = np.asarray(block, dtype=np.int64)
    n_blocks = int(block.max()) + 1 if block.size else 0
    order = np.argsort(block, kind="stable")
    counts = np.bincount(block, minlength=n_blocks)
    starts = np.concatenate([[0], np.cumsum(counts)])
    device = tensors[0].device

    def factory(generator, epoch):
        blocks = (torch.randperm(n_blocks, generator=generator) if shuffle else torch.arange(n_blocks)).numpy()
        sizes = counts[blocks]
        # cut the shuffled blocks where the running row count passes a multiple of batch_size
        ends = np.cumsum(sizes)
        cut = np.flatnonzero(np.diff(ends // batch_size, prepend=0) > 0) + 1
        cut = np.unique(np.concatenate([cut, [blocks.size]]))
        lo = 0
        for hi in cut:
            chosen = blocks[lo:hi]
            lo = hi
            if chosen.size == 0:
                continue
            if world_size > 1:
                # deal whole blocks by the middle of their rows in the batch's running row count
                mid = np.cumsum(counts[chosen]) - counts[chosen] / 2
                owner = np.minimum((mid * world_size // max(int(counts[chosen].sum()), 1)).astype(np.int64),
                                   world_size - 1)
                chosen = chosen[owner == rank]
            n_rows = counts[chosen]
            local = np.repeat(np.arange(chosen.size), n_rows)
            # rows of each chosen block: its start plus 0..count-1
            offset = np.arange(local.size) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows)
            rows = order[starts[chosen][local] + offset]
            idx = torch.from_numpy(rows).to(device)
            yield (*(t[idx] for t in tensors), torch.from_numpy(local).to(device), torch.from_numpy(chosen).to(device))

    return factory


def _as_factory(data, batch_size: int, shuffle: bool, rank: int = 0, world_size: int = 1) -> Callable:
    if callable(data):
        return data
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        return row_batches(tuple(data), batch_size, shuffle=shuffle, rank=rank, world_size=world_size)
    raise TypeError("training/validation data must be a tuple of tensors or a batch factory")


def _batch_weight(batch) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0]) if hasattr(first, "shape") and len(first.shape) else 1


def _state_copy(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _signature(module: torch.nn.Module) -> dict:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def _save_checkpoint(path: Path, bundle: dict) -> None:
    """Write atomically: a temporary sibling, flushed to disk, then renamed over the checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(bundle, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise InputDataError(f"checkpoint {path} is not readable ({type(err).__name__}: {err}); delete it or set "
                             "training.resume: false") from None


def train_epochs(module: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor], train,
                 valid=None, *, max_epochs: int, batch_size: int, learning_rate: float,
                 early_stopping_patience: int, checkpoint_dir: str | Path | None = None, checkpoint_every: int = 1,
                 resume: bool = True, seed: int = 0, progress: Callable[[dict], None] | None = None,
                 fingerprint: str | None = None, mixed_precision: bool = False, score: ValidScore | None = None,
                 rank: int = 0, world_size: int = 1) -> TrainResult:
    """Train ``module`` with Adam, early stopping on the validation loss, checkpoints and resume.

    Parameters
    ----------
    module : torch.nn.Module
        The network, on its device; trained in place and left with the kept weights (the best
        validation epoch's, or the last epoch's without validation data) in eval mode.
    loss_fn : callable
        ``loss_fn(module, batch) -> scalar tensor``, the mean loss of a batch (``0 * output.sum()``
        for an empty batch, which a data-parallel rank may get).
    train : tuple of torch.Tensor or callable
        Row-aligned tensors (shuffled row batches of ``batch_size``) or a batch factory
        ``factory(generator, epoch) -> iterable of batches`` (see :func:`block_batches`) that draws
        its randomness from ``generator`` only; data-parallel, a factory yields this rank's share.
    valid : tuple of torch.Tensor or callable, optional
        Validation data, batched in order (a factory is called with ``(None, epoch)``); carve it
        from the training blocks so that it does not leak the test split. Without it no early stopping.
    max_epochs, batch_size, learning_rate, early_stopping_patience : int, int, float, int
        The :class:`~pipeline.config.sections.TrainingConfig` settings.
    checkpoint_dir : str or Path, optional
        Where ``checkpoint.pt`` goes; ``None``: no checkpoints.
    checkpoint_every : int
        Epochs between checkpoints (the last epoch and an early stop are always checkpointed).
    resume : bool
        Continue from ``checkpoint_dir/checkpoint.pt`` when it exists (else it is overwritten).
    seed : int
        Seed of the shuffling and of the global RNG during training (dropout).
    progress : callable, optional
        Called after every epoch (after its checkpoint) with ``{"epoch", "max_epochs",
        "train_loss", "valid_loss", "best_loss"}``, plus ``valid_score`` and ``score_name`` with a
        ``score`` and validation data.
    fingerprint : str, optional
        Identity of the run (model, data, settings); a checkpoint with another one is refused.
    mixed_precision : bool
        On a CUDA device, compute the forward passes in bfloat16 (``torch.autocast``; bfloat16
        keeps float32's range, so no gradient scaling is needed). Ignored on the CPU.
    score : ValidScore, optional
        A validation score computed every epoch (``valid_score`` in the history and the progress).
    rank, world_size : int
        Data-parallel training inside an initialised ``torch.distributed`` group of ``world_size``
        ranks (see the module's docstring); ``1``: this process alone.

    Returns
    -------
    TrainResult
        The same on every rank.

    Raises
    ------
    ConfigError
        Invalid settings, or a checkpoint written by another model or run (``fingerprint``).
    """
    for name, value, low in (("max_epochs", max_epochs, 1), ("batch_size", batch_size, 1),
                             ("early_stopping_patience", early_stopping_patience, 1),
                             ("checkpoint_every", checkpoint_every, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"training.{name} must be an integer >= {low}, not {value!r}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ConfigError(f"training.learning_rate must be positive, not {learning_rate!r}")
    _check_rank(rank, world_size)
    dist = None
    if world_size > 1:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() != world_size \
                or dist.get_rank() != rank:
            raise ConfigError(f"data-parallel training as rank {rank} of {world_size} needs a torch.distributed "
                              "process group of that size; run it through pipeline.train.run_data_parallel")
    lead = rank == 0
    train_factory = _as_factory(train, batch_size, True, rank, world_size)
    valid_factory = None if valid is None else _as_factory(valid, batch_size, False, rank, world_size)
    path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None

    params = list(module.parameters())
    device = params[0].device if params else torch.device("cpu")
    amp = bool(mixed_precision) and device.type == "cuda"
    cuda = [device.index or 0] if device.type == "cuda" else []
    # the device of the collectives' tensors: nccl reduces on the GPU, gloo on the CPU
    reduce_device = device if dist is not None and dist.get_backend() == "nccl" else torch.device("cpu")
    with torch.random.fork_rng(devices=cuda):
        # seed only the generators this run uses (torch.manual_seed would touch every GPU's)
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(module.parameters(), lr=learning_rate)
        result = TrainResult()
        best_state = None
        bad_epochs = 0
        ck = None
        if path is not None and resume and lead and path.is_file():
            ck = load_checkpoint(path)
        if dist is not None and path is not None and resume:
            # rank 0 reads it: the other ranks need no shared file system
            box = [ck]
            dist.broadcast_object_list(box, src=0, device=reduce_device)
            ck = box[0]
        if ck is not None:
            if ck.get("fingerprint") != fingerprint or ck.get("signature") != _signature(module):
                raise ConfigError(f"checkpoint {path} was written by another model, data set or setting; delete it "
                                  "or set training.resume: false to start afresh")
            module.load_state_dict(ck["model"])
            optimiser.load_state_dict(ck["optimiser"])
            generator.set_state(ck["generator"])
            rng_cpu, rng_cuda = ck["rng_cpu"], ck.get("rng_cuda")
            per_rank = ck.get("rng_ranks")
            if per_rank is not None and len(per_rank) == world_size:
                rng_cpu, rng_cuda = per_rank[rank]
            torch.set_rng_state(rng_cpu)
            if cuda and rng_cuda is not None:
                torch.cuda.set_rng_state(rng_cuda, device)
            best_state = ck["best_state"]
            bad_epochs = int(ck["bad_epochs"])
            result = TrainResult(epochs=int(ck["epoch"]), best_epoch=int(ck["best_epoch"]),
                                 best_loss=float(ck["best_loss"]), stopped_early=bool(ck["stopped_early"]),
                                 resumed_from=int(ck["epoch"]), history=list(ck["history"]))
        net = module
        if dist is not None:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)

        while result.epochs < max_epochs and not result.stopped_early:
            epoch = result.epochs
            net.train()
            total, weight = 0.0, 0
            for batch in train_factory(generator, epoch):
                optimiser.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    loss = loss_fn(net, batch)
                if not torch.isfinite(loss):
                    raise InputDataError(f"the training loss became {loss.item()} in epoch {epoch + 1}; check the "
                                         "inputs for extreme values or lower training.learning_rate")
                loss.backward()
                optimiser.step()
                w = _batch_weight(batch)
                total += float(loss.detach()) * w
                weight += w
            sums = [total, float(weight), 0.0, 0.0, 0.0, 0.0]
            if valid_factory is not None:
                module.eval()
                with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    for batch in valid_factory(None, epoch):
                        w = _batch_weight(batch)
                        sums[2] += float(loss_fn(module, batch)) * w
                        sums[3] += w
                        if score is not None:
                            s, c = score.batch(module, batch)
                            sums[4] += float(s)
                            sums[5] += float(c)
            if dist is not None:
                reduced = torch.tensor(sums, dtype=torch.float64, device=reduce_device)
                dist.all_reduce(reduced)
                sums = reduced.tolist()
            train_loss = sums[0] / max(sums[1], 1.0)
            valid_loss = sums[2] / max(sums[3], 1.0) if valid_factory is not None else None
            entry = {"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid_loss}
            if score is not None and valid_factory is not None:
                mean = sums[4] / sums[5] if sums[5] > 0 else None
                entry["valid_score"] = None if mean is None else float(score.finish(mean) if score.finish else mean)
            result.epochs = epoch + 1
            result.history.append(entry)
            if valid_loss is None:
                result.best_epoch, result.best_loss = epoch + 1, train_loss
            elif valid_loss < result.best_loss:
                result.best_epoch, result.best_loss = epoch + 1, valid_loss
                best_state = _state_copy(module)
                bad_epochs = 0
            else:
                bad_epochs += 1
                result.stopped_early = bad_epochs >= early_stopping_patience
            last = result.epochs >= max_epochs or result.stopped_early
            if path is not None and (result.epochs % checkpoint_every == 0 or last):
                rng_cuda = torch.cuda.get_rng_state(device) if cuda else None
                rng_ranks = None
                if dist is not None:
                    # every rank's global RNG (dropout drew on its own rows): an exact resume on as many ranks
                    rng_ranks = [None] * world_size
                    dist.all_gather_object(rng_ranks, (torch.get_rng_state(), rng_cuda))
                if lead:
                    _save_checkpoint(path, {
                        "model": module.state_dict(), "optimiser": optimiser.state_dict(),
                        "generator": generator.get_state(), "rng_cpu": torch.get_rng_state(), "rng_cuda": rng_cuda,
                        "rng_ranks": rng_ranks,
                        "epoch": result.epochs, "best_epoch": result.best_epoch, "best_loss": result.best_loss,
                        "best_state": best_state, "bad_epochs": bad_epochs, "stopped_early": result.stopped_early,
                        "history": result.history, "fingerprint": fingerprint, "signature": _signature(module),
                    })
            if progress is not None and lead:
                event = {"epoch": result.epochs, "max_epochs": max_epochs, "train_loss": train_loss,
                         "valid_loss": valid_loss, "best_loss": result.best_loss}
                if "valid_score" in entry:
                    event.update(valid_score=entry["valid_score"], score_name=score.name)
                progress(event)
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return result
