"""A plugin written for a future bHype core; this core must block it without importing it."""

# Importing this module at all would be a bug in the version check: make it loud.
raise AssertionError("bhype_example_incompatible was imported despite its bhype-core>=99 requirement")
