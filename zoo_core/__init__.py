"""zoo_core: interfaces, plugin hooks, catalog, loader, trainer and CLI of the zoo.

Importing this package is cheap: it does not import torch or any family's model code.
"""

__version__ = "0.1.0"
