"""Open a NetCDF grid or weights file with a clear message when it is missing, of another format or corrupt.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputDataError


def open_netcdf(path, what: str):
    """Open the NetCDF file ``path`` (a grid or weights file) lazily, times not decoded.

    Checks first with :func:`pipeline.io.detect_format` (a clear :class:`InputDataError` for a
    missing file, a Zarr store or a file of another format) and
    :func:`pipeline.io.integrity.check_netcdf_complete` (a file shorter than its header says);
    a NetCDF file that still cannot be read is an :class:`InputDataError` naming ``what`` and the path.
    """
    import xarray as xr

    from pipeline.io.integrity import check_netcdf_complete
    from pipeline.io.reading import DECODE_ERRORS
    from pipeline.io.stores import detect_format

    path = Path(path)
    try:
        fmt = detect_format(path)
    except InputDataError as err:
        raise InputDataError(f"{what}: {err}") from None
    if fmt != "netcdf":
        raise InputDataError(f"{what} {path} is a {fmt} store; pass a NetCDF (.nc) file")
    try:
        check_netcdf_complete(path)
    except InputDataError as err:
        raise InputDataError(f"{what}: {err}") from None
    try:  # SCRIP/ESMF files hold no times: decoding them could only fail on odd attributes
        return xr.open_dataset(path, decode_times=False)
    except (*DECODE_ERRORS, KeyError) as err:
        raise InputDataError(f"{what} {path} cannot be read as NetCDF ({type(err).__name__}: {err}); "
                             "the file may be truncated or corrupt: re-create it") from None
