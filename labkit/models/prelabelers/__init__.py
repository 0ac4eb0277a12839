"""Pre-labelers: models propose annotations for a whole project, people review them.

:func:`prelabel` runs one of :data:`PRELABELERS` over a project's images and stores what
it finds as proposals (:mod:`labkit.store.proposals`), which count as delivered labels
only once a reviewer accepts them (``Labeler(project, annotator=..., review=True)``):

- ``boxes`` (:mod:`.masks`): a mask from every box, by SAM or GrabCut;
- ``auto`` (:mod:`.masks`): SAM's automatic mask generation, "segment everything";
- ``pool`` (:mod:`.pool`): an image-level class from the project's model pool, with its
  confidence and X/C-perplexity.

Runs are batched and resumable (images holding proposals of the same pre-labeler and
model are skipped), show a progress bar, reuse the embedding cache, and run on a Dask
cluster when given a client (``docs/prelabel.md``). ``labkit prelabel`` is the command.
"""
from __future__ import annotations

from .run import PRELABELERS, RESULT_COLUMNS, prelabel

__all__ = ["PRELABELERS", "RESULT_COLUMNS", "prelabel"]
