"""Db package of the bHype core."""
