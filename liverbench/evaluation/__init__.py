"""Metrics, runtime records, tables, statistics and figures; reads predictions from files only."""
