"""The project store: SQLite (a folder, the embedded default) or PostgreSQL (a URL).

:class:`ProjectStore` opens or creates a project's database and holds one repository per
area over a shared :class:`StoreContext` (engine, acting user, transactions, audit log,
:class:`AccessPolicy`). :class:`labkit.Project` is the thin public front over it.
:class:`ProjectLike` is what the layers above need of a project.

Names load on first use, so ``labkit.store.errors`` and ``labkit.store.protocol`` can be
imported without SQLAlchemy.
"""
from labkit._util.lazy import lazy_exports

_MODULES = {
    "labkit.store.context": ["StoreContext"],
    "labkit.store.errors": ["AccessDenied", "ImageError", "ProjectError"],
    "labkit.store.policy": ["AccessPolicy"],
    "labkit.store.project_store": ["ProjectStore"],
    "labkit.store.protocol": ["ProjectLike"],
    "labkit.store.subjects": ["ErasedRecords"],
}
_LAZY = {name: mod for mod, names in _MODULES.items() for name in names}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
