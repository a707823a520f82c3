"""First-order conservative remapping weights, and SCRIP / ESMF weight files.

A weight is the **overlap area** (unit sphere, steradians) of a source cell with a destination
cell; nothing is normalised here. A conservative mean is ``Σ w x / Σ w`` over the valid sources
of a destination cell (CDO's ``fracarea`` normalisation), so any per-destination scaling of the
weights, such as the normalised ``remap_matrix`` of a SCRIP file, gives the same result.

Every grid of :mod:`pipeline.grids` is a stack of latitude rows, each split into longitude
intervals, and every cell is a latitude-longitude box. The overlap of two boxes is therefore the
product of a latitude overlap, measured in ``sin φ`` (exact on the sphere), and a longitude
overlap in radians (periodic). That gives three shapes of exact weights:

* :class:`SeparableWeights` (rectilinear → rectilinear): row links ``(rsrc, rdst, Δsin φ)`` and
  column links ``(csrc, cdst, Δλ)``; a 1 km → 1° global pair needs 21 720 + 43 560 links instead of
  933 million.
* :class:`RowwiseWeights` (rectilinear → reduced Gaussian): the row links, and one set of column
  links per distinct number of points per row, made when asked (:meth:`RowwiseWeights.group_cols`).
* :class:`SparseWeights` (anything else, and weights read from files): COO links
  ``(src, dst, w)`` over the flat cell indices.

Weight files: :func:`write_weights` writes SCRIP (``src_address``/``dst_address`` 1-based,
``remap_matrix`` normalised with ``fracarea``, grid centres, corners, areas, fractions), which
``cdo remap,<grid>,weights.nc`` applies, or ESMF (``row``/``col``/``S``/``frac_a``/``frac_b`` ...);
:func:`read_weights` reads both, e.g. weights from ``cdo gencon`` or ESMF_RegridWeightGen, and checks
their structure first (variables, grid sizes, addresses, weights finite and >= 0); the source cell
centres it keeps let :func:`pipeline.aggregate.apply_weights` refuse an input on another grid of
the same size. Weight files are NetCDF (``.nc``); writing them is refused when the links and grid
arrays cannot fit in memory (:mod:`pipeline.grids.limits`).

Modules: ``links`` (exact 1-D overlaps), ``types`` (the three weight containers), ``overlaps``
(:func:`compute_weights`), ``files`` (SCRIP/ESMF weight files).
"""

from __future__ import annotations

from pipeline.weights.files import read_weights, write_weights
from pipeline.weights.links import SLIVER, interval_overlaps, lat_links, lon_links
from pipeline.weights.overlaps import compute_weights
from pipeline.weights.types import (
    RowwiseWeights,
    SeparableWeights,
    SparseWeights,
    Weights,
)

__all__ = [
    "RowwiseWeights",
    "SLIVER",
    "SeparableWeights",
    "SparseWeights",
    "Weights",
    "compute_weights",
    "interval_overlaps",
    "lat_links",
    "lon_links",
    "read_weights",
    "write_weights",
]
