"""Experiments: one module per paper experiment (SPEC §5); notebooks call these."""
