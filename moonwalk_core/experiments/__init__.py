"""Experiments: one module per paper experiment (``docs/experiments.md``); notebooks call these.

``python -m moonwalk_core.experiments`` runs the pipeline's stages (``docs/pipeline.md``).
"""
