"""Public aggregation API: fine fields → ESM grids, exactly conservative, streamed in row chunks.

* :func:`conservative_mean` area-weighted mean over the valid (finite) part of every target cell
  (CDO ``remapcon`` with ``fracarea`` normalisation), over any leading dimensions;
* :func:`class_fractions` area fraction of each class, or of each PFT through a class→PFT
  crosswalk, without a one-hot array; :func:`majority_class` the class with the largest area;
* :func:`subgrid_stats` area-weighted standard deviation, minimum and maximum per target cell;
* :func:`apply_weights` the same with weights from a SCRIP/ESMF file (e.g. ``cdo gencon``);
* :func:`crop_to_source` the target cells that overlap a regional input, cut out of a result on
  the whole grid (:func:`source_edges` gives the input's cell edges, :func:`overlap_cells` the
  kept cells): regional inputs give regional outputs, equal to the same cells of the global one;
* :class:`FieldSums` many fields built in memory (products of several inputs) aggregated as one
  stack per kernel call onto only the target cells that overlap the input (work O(region), each
  cell equal bit for bit to the whole grid's), :func:`mean_of` their conservative means.

The source is read in chunks of rows (``chunk_rows``; default: ~32 M values per chunk), so memory
is one chunk plus the target accumulators, whatever the size of the input. Inputs may have
descending latitudes and 0..360 longitudes: the weights index the array as it is stored.

``engine`` picks the kernels: ``"numpy"`` (:mod:`kernels.reference`), ``"numba"``
(:mod:`kernels.cpu`), ``"cupy"`` (:mod:`kernels.gpu`); ``"auto"`` = cupy for CuPy-backed input,
numba otherwise.

Modules: ``continuous`` (mean, sub-grid statistics), ``categorical`` (class and PFT fractions,
majority), ``crosswalk`` (class → PFT tables), ``methods`` (the method table shared by
:func:`apply_weights` and the CLI), ``plan`` (weights bound to a source array, one plan class per
weights type; bound to a subset of the target cells if asked), ``stream`` (the engine, chosen
once, and the streamed row chunks), ``batch`` (stacks of fields onto the overlapping target
cells), ``cf`` (CF output), ``crop`` (regional outputs), ``select`` (one field out of a variable with extra
dimensions: ``--select``).

Work that cannot fit in memory (accumulators on a huge target grid, a lookup table for class
codes of 1e11) is refused up front with the estimate and the limit (:mod:`pipeline.grids.limits`);
a mean or statistics of a categorical map (CF ``flag_values``) is refused; weights read from a file
are refused for an input whose cell centres are not the file's source centres.
"""

from __future__ import annotations

from pipeline.aggregate.batch import FieldSums, mean_of
from pipeline.aggregate.categorical import class_fractions, majority_class
from pipeline.aggregate.cf import to_dataset
from pipeline.aggregate.continuous import conservative_mean, refuse_categorical, subgrid_stats
from pipeline.aggregate.crop import crop_to_source, overlap_cells, source_edges
from pipeline.aggregate.crosswalk import check_crosswalk, read_crosswalk
from pipeline.aggregate.methods import METHODS, apply_weights, method_function
from pipeline.aggregate.select import extra_dims, select_fields
from pipeline.aggregate.stream import CHUNK_VALUES

__all__ = [
    "CHUNK_VALUES",
    "FieldSums",
    "METHODS",
    "apply_weights",
    "check_crosswalk",
    "class_fractions",
    "conservative_mean",
    "crop_to_source",
    "extra_dims",
    "majority_class",
    "mean_of",
    "method_function",
    "overlap_cells",
    "read_crosswalk",
    "refuse_categorical",
    "select_fields",
    "source_edges",
    "subgrid_stats",
    "to_dataset",
]
