"""labkit.models (see docs/ and DESIGN.md)."""
