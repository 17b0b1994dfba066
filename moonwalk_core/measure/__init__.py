"""Measurement layer (SPEC §4): peak memory, timing, max depth under a budget.

Backend-neutral: torch and JAX are imported lazily inside the functions. Every memory figure
carries a ``source`` label that travels into the results tables.
"""

from .max_depth import max_depth_under_budget
from .peak import peak_memory, peak_rss_fresh_process
from .timing import time_interleaved

__all__ = [
    "max_depth_under_budget",
    "peak_memory",
    "peak_rss_fresh_process",
    "time_interleaved",
]
