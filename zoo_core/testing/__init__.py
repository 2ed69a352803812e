"""Testing tools for plugin authors, installed with ``zoo-core``.

* ``zoo_core.testing.pytest_plugin``: a pytest plugin (registered under ``pytest11``, so pytest
  loads it whenever ``zoo-core`` is installed). ``pytest --zoo-family NAME`` runs the conformance
  checks against an installed family from any folder; the ``zoo_family`` and ``zoo_hub`` fixtures
  are there for a plugin's own tests.
* ``zoo_core.testing.conformance``: the checks themselves, as pytest tests over ``zoo_family``.
  A plugin's test file runs them with ``from zoo_core.testing.conformance import *`` and
  ``ZOO_FAMILIES = ["my-family"]``.
* ``zoo_core.testing.hub_server``: a Hub-compatible HTTP server on 127.0.0.1 (standard library
  only) that the real ``huggingface_hub`` client talks to, for push/pull tests without a network.
"""
