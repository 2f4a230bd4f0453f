"""The core's built-in plugins, registered through the core's own ``bhype`` entry points."""
