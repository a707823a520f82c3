"""The main job: ``terrascale run`` as cached, resumable stages in a run directory.

Modules
-------
``keys``
    Stage and model cache keys from the config sections each reads (and the parts that changed).
``directory``
    The run directory, its ``manifest.json`` (stage records, model checksums) and ``logs/run.log``.
``state``
    What the stages share: config, run directory, the dask cluster (started on first use).
``stages``
    The work of prepare, features, train, predict, aggregate and evaluate.
``report``
    The report stage: a :class:`~pipeline.report.ReportContext` from the run's outputs, rendered.
``runner``
    :func:`run_pipeline`: keys, reuse, ``--stages``/``--force``/``--resume``.
"""

from __future__ import annotations

from pipeline.run.directory import MANIFEST, RunDirectory
from pipeline.run.keys import STAGES
from pipeline.run.runner import RunSummary, parse_stages, run_pipeline

__all__ = ["MANIFEST", "STAGES", "RunDirectory", "RunSummary", "parse_stages", "run_pipeline"]
