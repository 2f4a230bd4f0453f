"""The per-user task queue: Task rows, the fair scheduler with resource locks, cancel and retry."""
