"""Auth package of the bHype core."""
