"""``python -m zoo``: the ``zoo`` command line."""

import sys

from zoo_core.cli import main

sys.exit(main())
