"""terrascale's benchmarks against its peers, in one harness: ``python -m benchmarks --help``.

Kept free of heavy imports: child processes of the benchmarks import this package before numpy.

OpenMP runtimes are asked to wait passively (``OMP_WAIT_POLICY=PASSIVE`` unless already set, before
numba, torch, XGBoost or scikit-learn load theirs): the harness runs different libraries back to
back in one process, and threads of one library's runtime spinning after its call would slow the
next library's call (XGBoost right after torch: 20 s instead of 3 s on 2 shared cores). The value
in force is recorded in every results file.
"""

import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
