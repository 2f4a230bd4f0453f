"""Drivers package of the bHype core."""
