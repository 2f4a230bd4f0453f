"""bHype webui plugin: the browser interface."""

__version__ = "0.2.0"
