"""Errors a user can cause. Each message says what went wrong and what to do about it."""


class ZooError(Exception):
    """Base class of every error the zoo raises on purpose."""


class UnknownModelError(ZooError, KeyError):
    """A name that is neither a catalog entry, a local folder nor a Hub repo id."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else ""


class UnknownFamilyError(ZooError, KeyError):
    """A family that no installed plugin provides."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PluginNotInstalledError(ZooError, ImportError):
    """A catalog entry or a saved model whose family's plugin is not installed."""


class PluginConflictError(ZooError):
    """Two plugins registered the same name."""


class InvalidConfigError(ZooError, ValueError):
    """A config that does not validate; the message names the file and the field."""


class CatalogError(ZooError, ValueError):
    """registry.yaml (or a plugin's catalog fragment) is malformed."""


class WeightsError(ZooError, ValueError):
    """Weights that do not match the model: missing or unexpected keys, wrong shapes, bad hashes."""


class HubError(ZooError):
    """Something went wrong talking to the Hub; the message says what to do."""


class UnknownOptionError(ZooError, TypeError):
    """A sampler (or other) option that the family does not declare; the message names the valid
    ones and the closest match. A ``TypeError``, like Python's own unexpected-keyword error."""


def unknown_options(unknown, valid) -> str:
    """``'num_inference_step' (did you mean num_inference_steps?), 'x'``: each unknown option name
    with its closest valid one, for an ``UnknownOptionError`` message."""
    import difflib

    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]}?)" if close else ""))
    return ", ".join(hints)


class DiskFullError(ZooError, OSError):
    """A write failed because the disk (or the file size limit) is full; the message names the folder."""


class InvalidArgumentError(ZooError, ValueError):
    """An argument outside its valid values (a device, a dtype, a count); the message names the valid ones."""


class DataMismatchError(ZooError, ValueError):
    """A dataset whose items do not have the shape the model expects; the message says what to change."""


class PluginBrokenError(ZooError):
    """A plugin failed in a way that is a bug in the plugin (a spec's import path, an exception from its code),
    not a mistake of the user; the message names the plugin and says where to report it."""


class UnknownTrainerError(ZooError, KeyError):
    """A trainer name (``zoo train --trainer``, ``zoo.trainer``) that no installed plugin registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
