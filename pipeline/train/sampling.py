"""Row samples of the lazily read feature table, drawn on the workers, for in-memory estimators."""

from __future__ import annotations

__all__ = ["sample_rows"]


def sample_rows(ddf, n: int | None, *, seed: int = 0, notify=None):
    """A uniform sample of about ``n`` rows of a dask DataFrame, as one pandas frame.

    Each partition is sampled where it lives (the same fraction everywhere), so only the sample
    travels to the client.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        The table.
    n : int or None
        Rows wanted; ``None`` (or more than the table has) takes the whole table.
    seed : int
        Seed of the draw.
    notify : callable, optional
        Called with one line when the sample is the whole table although fewer rows were asked.

    Returns
    -------
    pandas.DataFrame
        The sample, in the table's row order.
    """
    total = int(ddf.map_partitions(len).compute().sum())
    if n is None or n >= total:
        if n is not None and notify is not None:
            notify(f"training.sample_rows {n:,} is more than the table's {total:,} rows: using the whole table")
        return ddf.compute()
    return ddf.sample(frac=n / total, random_state=seed).map_partitions(_in_order).compute()


def _in_order(part):
    # a partition's sample comes out shuffled; rows keep the table's order (partitions already do)
    return part.sort_index()
