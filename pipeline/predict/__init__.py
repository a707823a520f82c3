"""Prediction products: fine predictions streamed to CF Zarr stores and their ESM-grid files.

Modules
-------
``esm``
    The ESM outputs of a run: IGBP and PFT class fractions, monthly LAI (and LAI per PFT), and the
    HTESSEL vegetation profile (``cvh``, ``cvl``, ``tvh``, ``tvl``, ``lai_hv``, ``lai_lv``) on each
    target grid, compressed and cropped to the region.
"""

from __future__ import annotations

__all__: list[str] = []
