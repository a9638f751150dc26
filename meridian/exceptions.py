"""Every error Meridian raises on purpose, in one place.

Each one carries a one-line message that names what is wrong and what would be right, so the
CLI can print ``str(error)`` and exit non-zero without a traceback.
"""

from __future__ import annotations


class MeridianError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 2


class DataError(MeridianError, ValueError):
    """Market data (OHLCV or COT) that cannot be used as given."""


class StrategyNotFoundError(MeridianError, LookupError):
    """A strategy name that no notebook or strategy module answers to."""


class ParameterError(MeridianError, ValueError):
    """An unknown parameter name, or a value of the wrong type."""


class EngineError(MeridianError, ValueError):
    """Inputs the backtest engine cannot simulate (misaligned positions, bad options)."""


class SettingError(ParameterError, EngineError):
    """A run setting that is unknown, of the wrong type, out of its range or not one of its
    choices (:class:`~meridian.settings.RunSettings`): a parameter error where
    settings are parsed, an engine error where the engine is called."""


class RegistryError(MeridianError):
    """A run record or a registry operation that cannot be carried out as asked."""


class RunNotFoundError(MeridianError, LookupError):
    """A run id (or id prefix) that matches no run, or more than one."""


class ExtractError(MeridianError, ValueError):
    """A notebook that cannot be turned into a strategy module safely."""


class ScaffoldError(MeridianError, ValueError):
    """A ``meridian new`` request that would clash with something that exists."""


class ProjectError(MeridianError):
    """No project where one is needed, a broken ``[tool.meridian]`` table, or a request that
    would write outside the project (``meridian init``, ``extract --output``)."""


class RegistryDamagedError(RegistryError):
    """The registry file cannot be read by SQLite; ``meridian runs rebuild`` recovers it."""


class PortInUseError(MeridianError):
    """``meridian ui``: the port is taken (the message names a free one)."""


class NotebookEditError(MeridianError):
    """A notebook edit that cannot be saved as asked (the file changed on disk since it was
    loaded, or jupytext would change more than the edited cells)."""


class NotebookNotFoundError(MeridianError, LookupError):
    """``meridian ui``: no notebook of that name in the project or the examples."""


class UniverseError(MeridianError, ValueError):
    """A universe file (``universes/NAME.toml``) that cannot be traded as written."""


def shown(value: object, limit: int = 300) -> str:
    """``value`` as an error message quotes it: its repr, cut to ``limit`` characters, so a
    5,000-character name or path still makes a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(str(value)):,} characters)"
