"""zoo-ddpm: denoising diffusion probabilistic models (Ho et al. 2020), with the cosine schedule and
strided sampling of Nichol & Dhariwal (2021)."""

__version__ = "0.1.0"
