"""Api package of the bHype core."""
