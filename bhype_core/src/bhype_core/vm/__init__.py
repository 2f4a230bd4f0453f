"""Virtual machines on this host: records, datastores, specs in context, lifecycle tasks."""
