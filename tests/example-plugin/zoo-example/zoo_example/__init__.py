"""An example zoo plugin (see docs/writing-plugins.md)."""
