"""Adjudication: a person decides an image's final annotation, recorded as consensus.

The decision copies one annotator's objects (or a computed consensus) into
``source="consensus"`` annotations of the consensus annotator, with who decided and
from what. Earlier consensus for that image and kind is soft-deleted in the same
transaction; the originals are never touched. :func:`undo_adjudication` reverses a
decision, also in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit._version import __version__
from labkit.services.consensus import CONSENSUS, ensure_consensus_annotator
from labkit.services.project import Project

__all__ = ["Decision", "adjudicate", "undo_adjudication"]


@dataclass
class Decision:
    """What :func:`adjudicate` did, enough to undo it."""
    image: int
    kind: str
    choice: str
    by: str  # who recorded the decision: the acting admin (project.user)
    added: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)


def adjudicate(project: Project, image: int, *, kind: str, choose: str, by: str | None = None,
               objects: list[dict[str, Any]] | None = None, annotator: str = CONSENSUS) -> Decision:
    """Make ``choose``'s annotations of ``kind`` on ``image`` the final (consensus) ones.

    Parameters
    ----------
    project : labkit.Project
    image : int
    kind : str
        ``label``, ``box``, ``mask``, ...
    choose : str
        An annotator's name, or ``"consensus"`` with ``objects`` holding the computed
        consensus (dicts with ``label``, ``geometry``, optional ``score``, ``inputs``).
    by : str, optional
        On whose behalf, when you record someone else's decision (a panel, a senior
        reader): a note in provenance (``on_behalf_of``) and the audit log. You
        (``project.user``, an admin) are who decided: ``adjudicated_by``.

    Returns
    -------
    Decision
    """
    current = project.annotations(image=image, kind=kind)
    if choose == CONSENSUS:
        if objects is None:
            raise ValueError("choose='consensus' needs objects= (the computed consensus for this image)")
        picked = [{"label": o["label"], "geometry": o.get("geometry"), "score": o.get("score"),
                   "inputs": list(o.get("inputs", []))} for o in objects]
    else:
        mine = current[current["worker"] == choose]
        if mine.empty:
            raise ValueError(f"{choose!r} has no {kind} annotations on image {image}; choose one of "
                             f"{sorted(set(current['worker']) - {annotator})}")
        picked = [{"label": r["label"], "geometry": r["geometry"], "score": r["score"], "inputs": [int(i)]}
                  for i, r in mine.iterrows()]
    ensure_consensus_annotator(project, annotator)
    note = {"on_behalf_of": by} if by is not None and by != project.user else {}
    old = current[(current["worker"] == annotator) & (current["source"] == "consensus")]
    records = [{"image": image, "kind": kind, "label": o["label"], "annotator": annotator, "source": "consensus",
                "geometry": o["geometry"], "score": None if o["score"] != o["score"] else o["score"],
                "provenance": {"method": "adjudication", "adjudicated_by": project.user, **note, "chosen": choose,
                               "inputs": o["inputs"], "labkit_version": __version__}}
               for o in picked]
    ids = project.replace_annotations(old.index.tolist(), records, by=by, action="adjudicate", image=int(image),
                                      kind=kind, chosen=choose)
    return Decision(image=int(image), kind=kind, choice=choose, by=project.user, added=ids,
                    replaced=[int(i) for i in old.index])


def undo_adjudication(project: Project, decision: Decision, *, by: str | None = None) -> None:
    """Reverse a decision: its annotations are deleted and the ones it replaced restored.

    You (``project.user``) are the actor; ``by`` is a note, as in :func:`adjudicate`.
    """
    project.replace_annotations(decision.added, [], restore=decision.replaced, by=by,
                                action="undo_adjudication", image=decision.image, kind=decision.kind)
