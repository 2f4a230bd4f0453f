"""bHype webui plugin: the browser interface."""

__version__ = "0.1.0"
