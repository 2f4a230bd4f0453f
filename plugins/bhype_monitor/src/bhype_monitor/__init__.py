"""bHype monitor plugin: host and VM metrics with a retained history."""

__version__ = "0.3.1"
