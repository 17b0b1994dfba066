"""Measurement layer: peak memory, timing, max depth under a budget (``docs/measurement.md``).

Backend-neutral: torch and JAX are imported lazily inside the functions; the one backend
adapter the harness uses is :mod:`moonwalk_core.measure.adapter`. Every memory figure carries a
``source`` label that travels into the results tables.
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
