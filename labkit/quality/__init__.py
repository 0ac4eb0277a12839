"""labkit.quality (see docs/ and DESIGN.md)."""
