"""Recipes: steps composed with ``>>`` and applied to Polars frames."""
