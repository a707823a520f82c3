"""terrascale: land-use/land-cover and LAI downscaling and aggregation for Earth system models."""

__version__ = "0.1.0"
