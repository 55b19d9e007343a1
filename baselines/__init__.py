"""Baselines of the benchmark; each subpackage is a method with its own CLI."""
