"""bHype hostops plugin: host services, vulnerability and patch popups, and the host update workflow."""

__version__ = "0.2.0"
