// terrascale aggregation kernels (CUDA C), launched from kernels/gpu.py through cupy.RawModule.
//
// Same semantics as kernels/reference.py (see there for the contract). Conventions:
//  * every kernel is `extern "C"` (no name mangling: cupy's get_function(name) finds it) and uses
//    a grid-stride loop, so any launch configuration covers all the work;
//  * accumulators are double and updated with atomicAdd(double*) (sm_60+); min/max of doubles use
//    an atomicCAS loop (there is no native atomicMin/Max for floating point);
//  * no shared memory and no __syncthreads: each thread is independent and only talks to others
//    through atomics. This keeps the kernels valid under the serial CPU emulation used by the
//    tests (tests/cuda_emulation.h), which runs the threads one after another;
//  * indices are long long (int64 arrays), x is float or double, class codes are unsigned char /
//    unsigned short read through an int table (raw code -> class index), or int class indices.
//    Class index -1 is missing, n_classes (or more) is invalid and counted in *n_bad.
//  * NaN/Inf in x is missing: `v - v == 0` is true exactly for finite v (no fast-math here).

#define TS_CLASS_WINDOW 32  // classes accumulated per thread in one pass of separable_class_sum

__device__ __forceinline__ long long ts_tid() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long ts_nthreads() { return (long long)gridDim.x * blockDim.x; }
__device__ __forceinline__ bool ts_finite(double v) { return v - v == 0.0; }

__device__ __forceinline__ void ts_atomic_min(double* addr, double val) {
    unsigned long long* a = (unsigned long long*)addr;
    unsigned long long old = *a;
    while (val < __longlong_as_double((long long)old)) {
        unsigned long long assumed = old;
        old = atomicCAS(a, assumed, (unsigned long long)__double_as_longlong(val));
        if (old == assumed) break;
    }
}

__device__ __forceinline__ void ts_atomic_max(double* addr, double val) {
    unsigned long long* a = (unsigned long long*)addr;
    unsigned long long old = *a;
    while (val > __longlong_as_double((long long)old)) {
        unsigned long long assumed = old;
        old = atomicCAS(a, assumed, (unsigned long long)__double_as_longlong(val));
        if (old == assumed) break;
    }
}

// class index of element i: through the table for 8/16-bit codes, direct for int class indices
__device__ __forceinline__ int ts_class(const unsigned char* c, const int* table, long long i) { return table[c[i]]; }
__device__ __forceinline__ int ts_class(const unsigned short* c, const int* table, long long i) { return table[c[i]]; }
__device__ __forceinline__ int ts_class(const int* c, const int* /*table*/, long long i) { return c[i]; }

// ---------------------------------------------------------------------------------- sparse

// one thread per (band, link): num[b,dst] += w*x[b,src], den += w, sq += w*x*x over finite x
template <typename T>
__device__ void sparse_weighted_sum_body(const T* x, long long nb, long long n_src, const long long* src,
                                         const long long* dst, const double* w, long long n_links,
                                         long long n_dst, double* num, double* den, double* sq, int squares) {
    long long total = nb * n_links;
    for (long long t = ts_tid(); t < total; t += ts_nthreads()) {
        long long b = t / n_links, l = t - b * n_links;
        double v = (double)x[b * n_src + src[l]];
        if (!ts_finite(v)) continue;
        long long o = b * n_dst + dst[l];
        double wl = w[l];
        atomicAdd(num + o, wl * v);
        atomicAdd(den + o, wl);
        if (squares) atomicAdd(sq + o, wl * v * v);
    }
}

extern "C" __global__ void sparse_weighted_sum_f32(const float* x, long long nb, long long n_src,
                                                   const long long* src, const long long* dst, const double* w,
                                                   long long n_links, long long n_dst, double* num, double* den,
                                                   double* sq, int squares) {
    sparse_weighted_sum_body<float>(x, nb, n_src, src, dst, w, n_links, n_dst, num, den, sq, squares);
}

extern "C" __global__ void sparse_weighted_sum_f64(const double* x, long long nb, long long n_src,
                                                   const long long* src, const long long* dst, const double* w,
                                                   long long n_links, long long n_dst, double* num, double* den,
                                                   double* sq, int squares) {
    sparse_weighted_sum_body<double>(x, nb, n_src, src, dst, w, n_links, n_dst, num, den, sq, squares);
}

// one thread per link: out[dst, class(src)] += w
template <typename C>
__device__ void sparse_class_sum_body(const C* codes, const int* table, const long long* src, const long long* dst,
                                      const double* w, long long n_links, long long n_classes, double* out,
                                      unsigned long long* n_bad) {
    for (long long l = ts_tid(); l < n_links; l += ts_nthreads()) {
        int c = ts_class(codes, table, src[l]);
        if (c < 0) continue;
        if (c >= n_classes) {
            atomicAdd(n_bad, 1ULL);
            continue;
        }
        atomicAdd(out + dst[l] * n_classes + c, w[l]);
    }
}

extern "C" __global__ void sparse_class_sum_u8(const unsigned char* codes, const int* table, const long long* src,
                                               const long long* dst, const double* w, long long n_links,
                                               long long n_classes, double* out, unsigned long long* n_bad) {
    sparse_class_sum_body<unsigned char>(codes, table, src, dst, w, n_links, n_classes, out, n_bad);
}

extern "C" __global__ void sparse_class_sum_u16(const unsigned short* codes, const int* table, const long long* src,
                                                const long long* dst, const double* w, long long n_links,
                                                long long n_classes, double* out, unsigned long long* n_bad) {
    sparse_class_sum_body<unsigned short>(codes, table, src, dst, w, n_links, n_classes, out, n_bad);
}

extern "C" __global__ void sparse_class_sum_i32(const int* codes, const int* table, const long long* src,
                                                const long long* dst, const double* w, long long n_links,
                                                long long n_classes, double* out, unsigned long long* n_bad) {
    sparse_class_sum_body<int>(codes, table, src, dst, w, n_links, n_classes, out, n_bad);
}

// one thread per (band, link); mn/mx start at +inf/-inf (the launcher maps NaN = empty to those)
template <typename T>
__device__ void sparse_min_max_body(const T* x, long long nb, long long n_src, const long long* src,
                                    const long long* dst, long long n_links, long long n_dst, double* mn, double* mx) {
    long long total = nb * n_links;
    for (long long t = ts_tid(); t < total; t += ts_nthreads()) {
        long long b = t / n_links, l = t - b * n_links;
        double v = (double)x[b * n_src + src[l]];
        if (!ts_finite(v)) continue;
        long long o = b * n_dst + dst[l];
        ts_atomic_min(mn + o, v);
        ts_atomic_max(mx + o, v);
    }
}

extern "C" __global__ void sparse_min_max_f32(const float* x, long long nb, long long n_src, const long long* src,
                                              const long long* dst, long long n_links, long long n_dst, double* mn,
                                              double* mx) {
    sparse_min_max_body<float>(x, nb, n_src, src, dst, n_links, n_dst, mn, mx);
}

extern "C" __global__ void sparse_min_max_f64(const double* x, long long nb, long long n_src, const long long* src,
                                              const long long* dst, long long n_links, long long n_dst, double* mn,
                                              double* mx) {
    sparse_min_max_body<double>(x, nb, n_src, src, dst, n_links, n_dst, mn, mx);
}

// ---------------------------------------------------------------------------------- separable
// Column links are passed grouped by target column (CSR): the links into target column q are
// col_ptr[q] .. col_ptr[q+1]-1, with source columns col_src[k] and weights col_w[k]. One thread
// handles one (band, row link, target column): it sums its fine cells in registers and issues one
// atomicAdd per accumulator, so contention is limited to the row links sharing a target row.

template <typename T>
__device__ void separable_weighted_sum_body(const T* x, long long nb, long long ny, long long nx,
                                            const long long* rsrc, const long long* rdst, const double* rw,
                                            long long n_rl, const long long* col_ptr, const long long* col_src,
                                            const double* col_w, long long n_dst_rows, long long n_dst_cols,
                                            double* num, double* den, double* sq, int squares) {
    long long total = nb * n_rl * n_dst_cols;
    for (long long t = ts_tid(); t < total; t += ts_nthreads()) {
        long long q = t % n_dst_cols, rest = t / n_dst_cols;
        long long l = rest % n_rl, b = rest / n_rl;
        const T* row = x + (b * ny + rsrc[l]) * nx;
        double s = 0.0, a = 0.0, s2 = 0.0;
        for (long long k = col_ptr[q]; k < col_ptr[q + 1]; ++k) {
            double v = (double)row[col_src[k]];
            if (!ts_finite(v)) continue;
            double cw = col_w[k];
            s += cw * v;
            a += cw;
            s2 += cw * v * v;
        }
        if (a == 0.0) continue;  // nothing finite (or zero weight): nothing to add
        long long o = (b * n_dst_rows + rdst[l]) * n_dst_cols + q;
        double r = rw[l];
        atomicAdd(num + o, r * s);
        atomicAdd(den + o, r * a);
        if (squares) atomicAdd(sq + o, r * s2);
    }
}

extern "C" __global__ void separable_weighted_sum_f32(const float* x, long long nb, long long ny, long long nx,
                                                      const long long* rsrc, const long long* rdst, const double* rw,
                                                      long long n_rl, const long long* col_ptr,
                                                      const long long* col_src, const double* col_w,
                                                      long long n_dst_rows, long long n_dst_cols, double* num,
                                                      double* den, double* sq, int squares) {
    separable_weighted_sum_body<float>(x, nb, ny, nx, rsrc, rdst, rw, n_rl, col_ptr, col_src, col_w, n_dst_rows,
                                       n_dst_cols, num, den, sq, squares);
}

extern "C" __global__ void separable_weighted_sum_f64(const double* x, long long nb, long long ny, long long nx,
                                                      const long long* rsrc, const long long* rdst, const double* rw,
                                                      long long n_rl, const long long* col_ptr,
                                                      const long long* col_src, const double* col_w,
                                                      long long n_dst_rows, long long n_dst_cols, double* num,
                                                      double* den, double* sq, int squares) {
    separable_weighted_sum_body<double>(x, nb, ny, nx, rsrc, rdst, rw, n_rl, col_ptr, col_src, col_w, n_dst_rows,
                                        n_dst_cols, num, den, sq, squares);
}

// One thread per (row link, target column); classes [c0, c0 + n_win) (n_win <= TS_CLASS_WINDOW)
// accumulate in a per-thread array; the launcher loops over windows when n_classes is larger.
// Invalid codes are counted in the pass with c0 == 0 only.
template <typename C>
__device__ void separable_class_sum_body(const C* codes, const int* table, long long ny, long long nx,
                                         const long long* rsrc, const long long* rdst, const double* rw,
                                         long long n_rl, const long long* col_ptr, const long long* col_src,
                                         const double* col_w, long long n_dst_cols, long long n_classes,
                                         long long c0, long long n_win, double* out, unsigned long long* n_bad) {
    long long total = n_rl * n_dst_cols;
    (void)ny;
    for (long long t = ts_tid(); t < total; t += ts_nthreads()) {
        long long q = t % n_dst_cols, l = t / n_dst_cols;
        long long base = rsrc[l] * nx;
        double acc[TS_CLASS_WINDOW];
        for (int k = 0; k < TS_CLASS_WINDOW; ++k) acc[k] = 0.0;
        unsigned long long bad = 0;
        for (long long k = col_ptr[q]; k < col_ptr[q + 1]; ++k) {
            int c = ts_class(codes, table, base + col_src[k]);
            if (c < 0) continue;
            if (c >= n_classes) {
                ++bad;
                continue;
            }
            long long cc = c - c0;
            if (cc >= 0 && cc < n_win) acc[cc] += col_w[k];
        }
        if (bad && c0 == 0) atomicAdd(n_bad, bad);
        double r = rw[l];
        double* o = out + (rdst[l] * n_dst_cols + q) * n_classes + c0;
        for (long long k = 0; k < n_win; ++k)
            if (acc[k] != 0.0) atomicAdd(o + k, r * acc[k]);
    }
}

extern "C" __global__ void separable_class_sum_u8(const unsigned char* codes, const int* table, long long ny,
                                                  long long nx, const long long* rsrc, const long long* rdst,
                                                  const double* rw, long long n_rl, const long long* col_ptr,
                                                  const long long* col_src, const double* col_w, long long n_dst_cols,
                                                  long long n_classes, long long c0, long long n_win, double* out,
                                                  unsigned long long* n_bad) {
    separable_class_sum_body<unsigned char>(codes, table, ny, nx, rsrc, rdst, rw, n_rl, col_ptr, col_src, col_w,
                                            n_dst_cols, n_classes, c0, n_win, out, n_bad);
}

extern "C" __global__ void separable_class_sum_u16(const unsigned short* codes, const int* table, long long ny,
                                                   long long nx, const long long* rsrc, const long long* rdst,
                                                   const double* rw, long long n_rl, const long long* col_ptr,
                                                   const long long* col_src, const double* col_w,
                                                   long long n_dst_cols, long long n_classes, long long c0,
                                                   long long n_win, double* out, unsigned long long* n_bad) {
    separable_class_sum_body<unsigned short>(codes, table, ny, nx, rsrc, rdst, rw, n_rl, col_ptr, col_src, col_w,
                                             n_dst_cols, n_classes, c0, n_win, out, n_bad);
}

extern "C" __global__ void separable_class_sum_i32(const int* codes, const int* table, long long ny, long long nx,
                                                   const long long* rsrc, const long long* rdst, const double* rw,
                                                   long long n_rl, const long long* col_ptr, const long long* col_src,
                                                   const double* col_w, long long n_dst_cols, long long n_classes,
                                                   long long c0, long long n_win, double* out,
                                                   unsigned long long* n_bad) {
    separable_class_sum_body<int>(codes, table, ny, nx, rsrc, rdst, rw, n_rl, col_ptr, col_src, col_w, n_dst_cols,
                                  n_classes, c0, n_win, out, n_bad);
}

// one thread per (band, row link, target column); mn/mx start at +inf/-inf
template <typename T>
__device__ void separable_min_max_body(const T* x, long long nb, long long ny, long long nx, const long long* rsrc,
                                       const long long* rdst, long long n_rl, const long long* col_ptr,
                                       const long long* col_src, long long n_dst_rows, long long n_dst_cols,
                                       double* mn, double* mx) {
    long long total = nb * n_rl * n_dst_cols;
    for (long long t = ts_tid(); t < total; t += ts_nthreads()) {
        long long q = t % n_dst_cols, rest = t / n_dst_cols;
        long long l = rest % n_rl, b = rest / n_rl;
        const T* row = x + (b * ny + rsrc[l]) * nx;
        double lo = __longlong_as_double(0x7ff0000000000000LL);  // +inf
        double hi = -lo;
        for (long long k = col_ptr[q]; k < col_ptr[q + 1]; ++k) {
            double v = (double)row[col_src[k]];
            if (!ts_finite(v)) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (!(lo <= hi)) continue;
        long long o = (b * n_dst_rows + rdst[l]) * n_dst_cols + q;
        ts_atomic_min(mn + o, lo);
        ts_atomic_max(mx + o, hi);
    }
}

extern "C" __global__ void separable_min_max_f32(const float* x, long long nb, long long ny, long long nx,
                                                 const long long* rsrc, const long long* rdst, long long n_rl,
                                                 const long long* col_ptr, const long long* col_src,
                                                 long long n_dst_rows, long long n_dst_cols, double* mn, double* mx) {
    separable_min_max_body<float>(x, nb, ny, nx, rsrc, rdst, n_rl, col_ptr, col_src, n_dst_rows, n_dst_cols, mn, mx);
}

extern "C" __global__ void separable_min_max_f64(const double* x, long long nb, long long ny, long long nx,
                                                 const long long* rsrc, const long long* rdst, long long n_rl,
                                                 const long long* col_ptr, const long long* col_src,
                                                 long long n_dst_rows, long long n_dst_cols, double* mn, double* mx) {
    separable_min_max_body<double>(x, nb, ny, nx, rsrc, rdst, n_rl, col_ptr, col_src, n_dst_rows, n_dst_cols, mn,
                                   mx);
}
