"""Merging models: mergekit-compatible configs, methods, statistics and the streaming engine.

    from graftkit.merge import merge, validate
    result = merge("recipe.yaml", "out/merged")       # validated, streamed, checked
    plan = validate("recipe.yaml")                    # every problem in one pass, no tensor read
"""

from graftkit.merge.api import merge, validate

__all__ = ["merge", "validate"]
