"""bHype core: plugin host, hook specifications, runner, database, queue, API and CLI."""

__version__ = "0.1.0"
