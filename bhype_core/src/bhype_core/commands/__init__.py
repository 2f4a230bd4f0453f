"""The core's ``bhype`` sub-commands, one module each; :mod:`bhype_core.cli` wires them up."""
