"""siamese_lib: a thin library reproducing EE-559 Project 1 (siamese CNNs on MNIST digit pairs)."""
__version__ = "0.1.0"
