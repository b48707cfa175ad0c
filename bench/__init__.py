"""`make bench`: GreenLens and ggsim measured on this machine (one JSON report, one table)."""
