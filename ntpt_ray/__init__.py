"""Neural TerpreT on Ray."""
