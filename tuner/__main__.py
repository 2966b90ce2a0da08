"""``python -m tuner`` is the ``tuner`` command."""

from tuner.cli import entry

entry()
