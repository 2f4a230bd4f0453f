"""Shared test configuration; the fixtures themselves come from the bhype_core.testing plugin."""
