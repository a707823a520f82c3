"""Aggregation kernels: numpy reference, numba CPU, CUDA C launched through CuPy."""
