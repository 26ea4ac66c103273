"""Speed studies of siamese_lib (not part of the package): ``python -m benchmarks.bench``, ``.study``, ``.scaling``."""
