"""Gold answers: the known image-level label of gold items, kept where annotators cannot see them.

Annotators are scored against these answers (:func:`labkit.services.consensus.annotator_table`),
so they live in a table of their own (``gold``), not in the image attributes annotators
read and write: admins write them, admins and viewers (who read the quality reports)
read them, annotators neither, on SQLite through the API and on PostgreSQL through the
grants as well (:mod:`labkit.store.pg_access`).
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import sqlalchemy as sa

from labkit._util.clock import utc_now
from labkit.store import schema as S
from labkit.store.classes import ClassRepository
from labkit.store.context import StoreContext
from labkit.store.images import missing_images

__all__ = ["GoldRepository"]


class GoldRepository:
    """Known answers of gold items (table ``gold``)."""

    def __init__(self, ctx: StoreContext, classes: ClassRepository):
        self._ctx, self._classes = ctx, classes

    def set(self, answers: Mapping[int, str | None], *, by: str | None = None) -> None:
        """Set (or, with ``None``, remove) the answers of images, in one transaction. Admins only.

        Each change is audited (``set_gold``) with the previous answer. You are the actor;
        ``by``, if it names someone else, is recorded as ``on_behalf_of``.
        """
        answers = {int(k): v for k, v in answers.items()}

        def fn(conn: sa.Connection) -> None:
            self._ctx.policy.check_by(conn, "set_gold", by)
            self._ctx.policy.require_admin(conn, "set_gold", "set gold answers")
            class_ids = self._classes.ids(conn)
            bad = {k: v for k, v in answers.items() if v is not None and v not in class_ids}
            if bad:
                raise ValueError(f"gold answers {dict(list(bad.items())[:5])} are not classes of the project "
                                 f"{sorted(class_ids)[:20]}; nothing was stored")
            known = set(conn.execute(sa.select(S.images.c.id).where(S.images.c.id.in_(list(answers)))).scalars())
            missing = [k for k in answers if k not in known]
            if missing:
                raise missing_images(missing).reworded("", "nothing was stored")
            g, names = S.gold, {v: k for k, v in class_ids.items()}
            before: dict[int, int] = {int(i): int(c) for i, c in conn.execute(
                sa.select(g.c.image_id, g.c.class_id).where(g.c.image_id.in_(list(answers)))).all()}
            t = utc_now()
            for image, label in answers.items():
                conn.execute(sa.delete(g).where(g.c.image_id == image))
                if label is not None:
                    conn.execute(sa.insert(g).values(image_id=image, class_id=class_ids[label], set_by=self._ctx.user,
                                                     set_at=t))
            self._ctx.audit(conn, "set_gold", target="images", on_behalf_of=by, count=len(answers),
                            before={str(k): names.get(before[k]) if k in before else None for k in answers},
                            after={str(k): v for k, v in answers.items()})
        self._ctx.write(fn)

    def table(self) -> pd.Series:
        """The answers: a Series image id (``task``) -> class name, named ``gold``. Admins and viewers.

        Images whose subject withdrew consent are left out, as everywhere else.
        """
        g, c, im = S.gold, S.classes, S.images

        def fn() -> pd.Series:
            with self._ctx.connect() as conn:
                self._ctx.policy.require(conn, "read_gold", "admin", "viewer",
                                         what="read gold answers (annotators are scored against them)")
                rows = conn.execute(sa.select(g.c.image_id, c.c.name).join(c, g.c.class_id == c.c.id)
                                    .join(im, g.c.image_id == im.c.id).where(S.not_withdrawn(im.c.consent))
                                    .order_by(g.c.image_id)).all()
            return pd.Series({int(i): name for i, name in rows}, name="gold", dtype=object).rename_axis("task")
        return self._ctx.guard(fn)
