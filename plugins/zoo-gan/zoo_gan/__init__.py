"""zoo-gan: generative adversarial nets (Goodfellow et al. 2014), MLP and DCGAN-style (Radford et al. 2016)."""

__version__ = "0.1.0"
