"""bHype backup plugin: VM backups to rsync targets."""

__version__ = "0.1.1"
