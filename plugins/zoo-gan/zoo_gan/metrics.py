"""The Parzen-window metric moved to the core (``zoo_core.parzen``), where every family can use it;
these names stay importable from here."""

from zoo_core.parzen import DEFAULT_SIGMAS, parzen, parzen_log_likelihood

__all__ = ["DEFAULT_SIGMAS", "parzen", "parzen_log_likelihood"]
