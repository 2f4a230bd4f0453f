"""Queue package of the bHype core."""
