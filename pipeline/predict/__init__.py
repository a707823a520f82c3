"""Prediction products: fine predictions streamed to CF Zarr stores and their ESM-grid files.

Modules
-------
``fields``
    The fine predictions of a run streamed into CF Zarr stores on the fine grid: LULC class
    probabilities and hard maps, monthly LAI (``pipeline.predict.fields``).
``esm``
    The ESM outputs of a run: IGBP and PFT class fractions, monthly LAI (and LAI per PFT), and the
    HTESSEL vegetation profile (``cvh``, ``cvl``, ``tvh``, ``tvl``, ``lai_hv``, ``lai_lv``) on each
    target grid, compressed and cropped to the region: :func:`lulc_esm`, :func:`lai_esm`,
    :func:`write_esm`.
"""

from __future__ import annotations

from pipeline.predict.esm import BATCH_VALUES, TYPE_FILL, lai_esm, lulc_esm, write_esm

__all__: list[str] = ["BATCH_VALUES", "TYPE_FILL", "lai_esm", "lulc_esm", "write_esm"]
