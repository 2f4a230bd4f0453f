"""bHype backup plugin: VM backups to rsync targets."""

__version__ = "0.2.0"
