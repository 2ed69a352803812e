"""Templates that ``zoo plugin new`` fills in (``plugin/``: a working plugin distribution)."""
