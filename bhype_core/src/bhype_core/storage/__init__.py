"""Storage package of the bHype core."""
