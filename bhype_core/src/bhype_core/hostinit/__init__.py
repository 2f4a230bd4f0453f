"""``bhype host init``: prepare a host for bHype, idempotently, plan first.

Every step is a pure planner (recorded command outputs → :class:`~.plan.Change` list, each with
the argv that applies it and the man page it follows) plus one applier running those argvs
through the host command runner. ``freebsd.py`` and ``linux.py`` hold each platform's steps;
``state.py`` reads the host; ``parsers.py`` parses the outputs. docs/install-freebsd.md shows
the command in use and explains why it runs as root from the CLI, not as a task.
"""
