"""Several hosts, one bHype (issue 22): host identity, registry, heartbeats, routing and placement."""
