"""siamese_lib: a thin library reproducing EE-559 Project 1 (siamese CNNs on MNIST digit pairs)."""

import os as _os

__version__ = "0.1.0"
PACKAGE_ENV = "SIAMESE_LIB_PACKAGE"  # set by the runner: the package its kernels and workers must import

_here, _theirs = _os.path.dirname(_os.path.realpath(__file__)), _os.environ.get(PACKAGE_ENV)
if _theirs and _os.path.realpath(_theirs) != _here:
    raise ImportError(
        f"this process imports siamese_lib from {_here}, but the runner that started it runs {_theirs}: "
        f"one environment serves two clones; run each clone with its own environment (or PYTHONPATH)"
    )
