"""Load generators and benchmarks; each prints a report."""
