"""stvad: spatio-temporal GAN with a U-Net discriminator for unsupervised video anomaly detection."""

from stvad.errors import StvadError

__version__ = "0.1.0"
__all__ = ["StvadError", "__version__"]
