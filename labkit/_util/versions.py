"""Versions of labkit and of the packages a result depends on, for provenance records."""
from __future__ import annotations

import importlib.metadata as md

from labkit._version import __version__

__all__ = ["package_versions"]


def package_versions(*packages: str) -> dict[str, str | None]:
    """``{"labkit": ..., package: version or None}``, without importing the packages.

    Examples
    --------
    >>> v = package_versions("numpy", "no-such-package-xyz")
    >>> sorted(v), v["no-such-package-xyz"]
    (['labkit', 'no-such-package-xyz', 'numpy'], None)
    """
    out: dict[str, str | None] = {"labkit": __version__}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out
