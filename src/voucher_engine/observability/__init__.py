"""Metrics and logs: what operators see of a running engine. Depends on nothing else in the package but config."""
