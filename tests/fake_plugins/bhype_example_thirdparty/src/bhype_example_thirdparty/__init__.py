"""Example third-party bHype plugin (a test fixture)."""

__version__ = "1.2.3"
