"""Merging models: mergekit-compatible configs, methods, statistics and the streaming engine."""
