"""Host package of the bHype core."""
