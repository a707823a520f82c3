"""Flatten gridded fields into tables and back, and build the training table's features.

The code moved from ``pipeline/features.py`` to ``builder.py`` unchanged; it is split into
modules of one concern each in the next commit.
"""

from pipeline.features.builder import *  # noqa: F401,F403
