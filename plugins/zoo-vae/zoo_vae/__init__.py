"""zoo-vae: the variational autoencoder of Kingma & Welling (2013), "Auto-Encoding Variational Bayes"."""

__version__ = "0.1.0"
