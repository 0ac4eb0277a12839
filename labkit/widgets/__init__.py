"""labkit.widgets (see docs/ and DESIGN.md)."""
