// cuda_emulation.h: run CUDA C kernels serially on the CPU, for tests on machines without a GPU.
//
// How it works
//   A test compiles `#include "cuda_emulation.h"` + `#include "kernel.cu"` with g++ as C++17.
//   This header turns the CUDA qualifiers (__global__, __device__, __host__, __forceinline__)
//   into plain C++, declares blockIdx/threadIdx/blockDim/gridDim as globals, and implements the
//   atomics and bit-cast intrinsics the kernels use with ordinary (non-atomic) C++: there is only
//   one thread. ts_emu_launch(grid, block, kernel, args...) sets gridDim/blockDim and calls the
//   kernel once per (block, thread), looping z, y, x over blocks and then over threads, in
//   forward order or (ts_emu_order = 1) in reverse, to catch kernels that rely on an order.
//   tests/helpers/cuda_tools.py generates an `extern "C"` wrapper per kernel around ts_emu_launch and
//   calls it through ctypes with numpy buffers.
//
// Limits (what the emulation cannot check)
//   * no shared memory (__shared__ is not defined here) and no __syncthreads / warp intrinsics:
//     a kernel using them does not compile against this header, on purpose, because running the
//     threads one by one would not respect the barriers;
//   * no concurrency: races, missing atomics and memory-ordering bugs are invisible. Atomic
//     operations are emulated by plain read-modify-write; their results match the GPU's only up
//     to the order of floating-point additions;
//   * no device limits: register/local-memory pressure, launch bounds, grid size limits, the
//     sm_60+ requirement of atomicAdd(double*) are not checked (the nvcc -ptx test covers
//     compilation for sm_80/sm_90);
//   * host math is used: device-only math functions must be added here when a kernel needs them.
#pragma once

#include <cstdint>
#include <cstring>

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline uint3 blockIdx, threadIdx;
inline dim3 blockDim, gridDim;
inline int ts_emu_order = 0;  // 0: forward, 1: reverse thread order

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

// ---- bit casts
inline long long __double_as_longlong(double d) {
    long long r;
    std::memcpy(&r, &d, sizeof r);
    return r;
}
inline double __longlong_as_double(long long l) {
    double r;
    std::memcpy(&r, &l, sizeof r);
    return r;
}
inline int __float_as_int(float f) {
    int r;
    std::memcpy(&r, &f, sizeof r);
    return r;
}
inline float __int_as_float(int i) {
    float r;
    std::memcpy(&r, &i, sizeof r);
    return r;
}

// ---- atomics (serial: plain read-modify-write, return the old value as CUDA does)
inline double atomicAdd(double* a, double v) { double o = *a; *a = o + v; return o; }
inline float atomicAdd(float* a, float v) { float o = *a; *a = o + v; return o; }
inline int atomicAdd(int* a, int v) { int o = *a; *a = o + v; return o; }
inline unsigned int atomicAdd(unsigned int* a, unsigned int v) { unsigned int o = *a; *a = o + v; return o; }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
    unsigned long long o = *a;
    *a = o + v;
    return o;
}
inline int atomicCAS(int* a, int cmp, int v) { int o = *a; if (o == cmp) *a = v; return o; }
inline unsigned int atomicCAS(unsigned int* a, unsigned int cmp, unsigned int v) {
    unsigned int o = *a;
    if (o == cmp) *a = v;
    return o;
}
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long cmp, unsigned long long v) {
    unsigned long long o = *a;
    if (o == cmp) *a = v;
    return o;
}
inline int atomicMin(int* a, int v) { int o = *a; if (v < o) *a = v; return o; }
inline int atomicMax(int* a, int v) { int o = *a; if (v > o) *a = v; return o; }

// ---- serial launcher
template <typename... P, typename... A>
void ts_emu_launch(dim3 grid, dim3 block, void (*kernel)(P...), A... args) {
    gridDim = grid;
    blockDim = block;
    const unsigned long long nblocks = (unsigned long long)grid.x * grid.y * grid.z;
    const unsigned long long nthreads = (unsigned long long)block.x * block.y * block.z;
    for (unsigned long long bi = 0; bi < nblocks; ++bi) {
        unsigned long long b = ts_emu_order ? nblocks - 1 - bi : bi;
        blockIdx.x = (unsigned int)(b % grid.x);
        blockIdx.y = (unsigned int)((b / grid.x) % grid.y);
        blockIdx.z = (unsigned int)(b / ((unsigned long long)grid.x * grid.y));
        for (unsigned long long ti = 0; ti < nthreads; ++ti) {
            unsigned long long t = ts_emu_order ? nthreads - 1 - ti : ti;
            threadIdx.x = (unsigned int)(t % block.x);
            threadIdx.y = (unsigned int)((t / block.x) % block.y);
            threadIdx.z = (unsigned int)(t / ((unsigned long long)block.x * block.y));
            kernel(args...);
        }
    }
}

extern "C" void ts_emu_set_order(int order) { ts_emu_order = order; }
