"""bHype ZFS plugin: pools, datasets and zvols as VM storage."""

__version__ = "0.3.0"
