"""zoo-ae: autoencoders (plain, sparse, contractive) for the zoo. Model code lives in zoo_ae.models."""

__version__ = "0.1.0"
