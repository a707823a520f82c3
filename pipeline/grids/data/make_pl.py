"""Derive the reduced Gaussian point lists shipped with terrascale from ecCodes' GRIB samples.

Run once (the output is checked in): ``python pipeline/grids/data/make_pl.py``. It reads the
``pl`` key (points per latitude row, north to south) of every ``reduced_gg_pl_<N>_grib2`` sample
that ecCodes (PyPI ``eccodes``) ships for the N in ``NS`` and writes ``reduced_gg_pl.json``:
``{"N128": {"source": "...", "pl": [...]}, ...}``. Nothing is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import eccodes

NS = (32, 48, 80, 128, 160, 200, 256, 320, 400, 512, 640)
OUT = Path(__file__).with_name("reduced_gg_pl.json")


def point_list(n: int) -> list[int]:
    gid = eccodes.codes_grib_new_from_samples(f"reduced_gg_pl_{n}_grib2")
    try:
        pl = [int(v) for v in eccodes.codes_get_array(gid, "pl")]
        if eccodes.codes_get(gid, "N") != n or len(pl) != 2 * n:
            raise RuntimeError(f"sample reduced_gg_pl_{n}_grib2 does not describe N{n}")
    finally:
        eccodes.codes_release(gid)
    return pl


def main() -> None:
    data = {}
    for n in NS:
        try:
            pl = point_list(n)
        except Exception as err:  # a sample missing from this ecCodes version
            print(f"N{n}: skipped ({err})")
            continue
        data[f"N{n}"] = {"source": f"ecCodes {eccodes.codes_get_api_version()} sample reduced_gg_pl_{n}_grib2", "pl": pl}
        print(f"N{n}: {len(pl)} rows, {sum(pl)} points")
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
