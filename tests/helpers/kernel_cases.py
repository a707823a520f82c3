"""Random inputs for the kernel tests (small, with NaN/Inf holes and missing classes)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

# hypothesis strategies for the parameters of one random case
sparse_params = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "nb": st.integers(1, 3),
    "n_src": st.integers(1, 40),
    "n_dst": st.integers(1, 12),
    "n_links": st.integers(0, 120),
    "n_classes": st.integers(1, 6),
    "dtype": st.sampled_from([np.float32, np.float64]),
    "idx_dtype": st.sampled_from([np.int32, np.int64]),
    "cls_dtype": st.sampled_from([np.int8, np.int16, np.int64, np.int32]),
    "missing": st.sampled_from([0.0, 0.3, 1.0]),
    "squares": st.booleans(),
})

separable_params = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "nb": st.integers(1, 3),
    "ny": st.integers(1, 14),
    "nx": st.integers(1, 18),
    "nr": st.integers(1, 5),
    "nc": st.integers(1, 6),
    "n_classes": st.integers(1, 6),
    "dtype": st.sampled_from([np.float32, np.float64]),
    "cls_dtype": st.sampled_from([np.uint8, np.int16, np.int64, np.int32]),
    "missing": st.sampled_from([0.0, 0.3, 1.0]),
    "regular": st.booleans(),
    "squares": st.booleans(),
})


def field(rng, shape, dtype, missing=0.2):
    x = rng.normal(size=shape).astype(dtype)
    m = rng.random(shape)
    x[m < missing] = np.nan
    x[(m >= missing) & (m < missing * 1.1)] = np.inf  # non-finite but not NaN: missing too
    return x


def classes(rng, shape, n_classes, dtype, missing=0.1):
    c = rng.integers(0, n_classes, size=shape)
    if np.dtype(dtype).kind == "i":  # unsigned codes have no "missing" without a lut
        c[rng.random(shape) < missing] = -1
    return c.astype(dtype)


def sparse_links(rng, n_src, n_dst, n_links, idx_dtype=np.int64):
    src = rng.integers(0, n_src, n_links).astype(idx_dtype)
    dst = rng.integers(0, n_dst, n_links).astype(idx_dtype)
    return src, dst, rng.random(n_links)


def axis_links(rng, n_fine, n_coarse, regular):
    """1-D links fine -> coarse. regular: monotone overlaps of a uniform axis (long runs of equal
    weights, partial boundary cells); otherwise random links (duplicates, gaps, any order)."""
    if regular:
        fe = np.linspace(0.0, 1.0, n_fine + 1)
        ce = np.linspace(0.0, 1.0, n_coarse + 1)
        src, dst, w = [], [], []
        for i in range(n_fine):
            for p in range(max(np.searchsorted(ce, fe[i]) - 1, 0), min(np.searchsorted(ce, fe[i + 1]) + 1, n_coarse)):
                ov = min(fe[i + 1], ce[p + 1]) - max(fe[i], ce[p])
                if ov > 1e-15:
                    src.append(i), dst.append(p), w.append(ov)
        return np.array(src, np.int64), np.array(dst, np.int64), np.array(w)
    n = int(rng.integers(1, 2 * n_fine + 2))
    return (rng.integers(0, n_fine, n), rng.integers(0, n_coarse, n), rng.random(n))


def expand(rows, cols, nx, n_dst_cols):
    """Separable links as the equivalent sparse links over the flattened (ny*nx) source."""
    rsrc, rdst, rw = (np.asarray(a) for a in rows)
    csrc, cdst, cw = (np.asarray(a) for a in cols)
    src = (rsrc[:, None] * nx + csrc[None, :]).ravel()
    dst = (rdst[:, None] * n_dst_cols + cdst[None, :]).ravel()
    return src, dst, (rw[:, None] * cw[None, :]).ravel()


# ----------------------------------------------------------------------------- engine checks
# Each check runs one kernel of ``eng`` (kernels.cpu, a kernels.gpu.Engine, ...) and of the
# reference on the same random inputs and asserts equal results. ``params`` is a dict drawn by
# hypothesis in the test modules (see ``sparse_params`` / ``separable_params`` there).

RTOL, ATOL = 1e-10, 1e-12


def _close(got, want):
    got = tuple(np.asarray(g) for g in got) if isinstance(got, tuple) else np.asarray(got)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def _equal(got, want):
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), w)


def sparse_inputs(p):
    rng = np.random.default_rng(p["seed"])
    x = field(rng, (p["nb"], p["n_src"]), p["dtype"], p["missing"])
    src, dst, w = sparse_links(rng, p["n_src"], p["n_dst"], p["n_links"], p["idx_dtype"])
    cls = classes(rng, p["n_src"], p["n_classes"], p["cls_dtype"])
    return x, src, dst, w, cls


def check_sparse(eng, ref, p):
    x, src, dst, w, cls = sparse_inputs(p)
    n_dst, k = p["n_dst"], p["n_classes"]
    _close(eng.sparse_weighted_sum(x, src, dst, w, n_dst, squares=p["squares"]),
           ref.sparse_weighted_sum(x, src, dst, w, n_dst, squares=p["squares"]))
    _close(eng.sparse_class_sum(cls, src, dst, w, n_dst, k), ref.sparse_class_sum(cls, src, dst, w, n_dst, k))
    _equal(eng.sparse_min_max(x, src, dst, n_dst), ref.sparse_min_max(x, src, dst, n_dst))


def separable_inputs(p):
    rng = np.random.default_rng(p["seed"])
    x = field(rng, (p["nb"], p["ny"], p["nx"]), p["dtype"], p["missing"])
    rows = axis_links(rng, p["ny"], p["nr"], p["regular"])
    cols = axis_links(rng, p["nx"], p["nc"], p["regular"])
    cls = classes(rng, (p["ny"], p["nx"]), p["n_classes"], p["cls_dtype"])
    return x, rows, cols, cls


def check_separable(eng, ref, p):
    x, rows, cols, cls = separable_inputs(p)
    nr, nc, k = p["nr"], p["nc"], p["n_classes"]
    _close(eng.separable_weighted_sum(x, rows, cols, nr, nc, squares=p["squares"]),
           ref.separable_weighted_sum(x, rows, cols, nr, nc, squares=p["squares"]))
    _close(eng.separable_class_sum(cls, rows, cols, nr, nc, k), ref.separable_class_sum(cls, rows, cols, nr, nc, k))
    _equal(eng.separable_min_max(x, rows, cols, nr, nc), ref.separable_min_max(x, rows, cols, nr, nc))


def check_chunked(eng, p, chunk):
    """Row chunks with chunk-relative row links added into out= give the one-call result."""
    x, rows, cols, cls = separable_inputs(p)
    nb, ny = x.shape[:2]
    nr, nc, k = p["nr"], p["nc"], p["n_classes"]
    rsrc, rdst, rw = rows
    whole_ws = eng.separable_weighted_sum(x, rows, cols, nr, nc, squares=True)
    whole_cls = eng.separable_class_sum(cls, rows, cols, nr, nc, k)
    whole_mm = eng.separable_min_max(x, rows, cols, nr, nc)
    acc_ws = tuple(np.zeros((nb, nr, nc)) for _ in range(3))
    acc_cls = np.zeros((nr, nc, k))
    acc_mm = (np.full((nb, nr, nc), np.nan), np.full((nb, nr, nc), np.nan))
    for r0 in range(0, ny, chunk):
        sel = (rsrc >= r0) & (rsrc < r0 + chunk)
        crow = (rsrc[sel] - r0, rdst[sel], rw[sel])
        r = eng.separable_weighted_sum(x[:, r0:r0 + chunk], crow, cols, nr, nc, squares=True, out=acc_ws)
        assert all(a is b for a, b in zip(r, acc_ws))
        eng.separable_class_sum(cls[r0:r0 + chunk], crow, cols, nr, nc, k, out=acc_cls)
        eng.separable_min_max(x[:, r0:r0 + chunk], crow, cols, nr, nc, out=acc_mm)
    _close(acc_ws, tuple(np.asarray(a) for a in whole_ws))
    _close(acc_cls, np.asarray(whole_cls))
    _equal(acc_mm, tuple(np.asarray(a) for a in whole_mm))
