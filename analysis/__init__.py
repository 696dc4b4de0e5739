"""Analysis: per-case metrics -> tables, statistics, figures and the report."""
