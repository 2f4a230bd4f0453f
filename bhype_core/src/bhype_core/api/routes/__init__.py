"""Routes package of the bHype core."""
