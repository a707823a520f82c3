"""Helpers shared by the tests: optional-package markers, tiny grids and stores, CUDA emulation."""
