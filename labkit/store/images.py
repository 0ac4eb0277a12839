"""Images: added by path and pinned by content hash; read only through the audited readers.

Every image's bytes are hashed (sha256) when it enters the project, so a changed or
missing file is detected, never silently used. Programs read images in one of two ways,
both checked against the reader's role and both written to the audit log, so the
privacy report's "who accessed what" is complete:

- :meth:`ImageRepository.read`: one image as an array (labeling, embedding);
- :meth:`ImageRepository.files`: the verified files of many images, for bulk readers
  that decode them elsewhere (pool training and scoring in worker processes, the
  audit's file checks). One audit entry per call names the purpose and the images.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import sqlalchemy as sa

from labkit._util.checks import check_json, name_problem
from labkit._util.clock import utc_now
from labkit._util.hashing import sha256_file
from labkit._util.memory import no_gc
from labkit.store import schema as S
from labkit.store.bulk import BATCH, chunks, decode_json, encode_json, encode_many, insert_many, raw, stored_time
from labkit.store.context import StoreContext
from labkit.store.errors import PROJECT, Fix, ImageError, ProjectError, command
from labkit.store.files import ImageInfo, expand_paths, inspect_images, load_rgb
from labkit.store.pipeline import pg_execute
from labkit.store.subjects import SubjectRepository

__all__ = ["ImageRepository", "LIST_IMAGES", "RESERVED_ATTRIBUTES", "missing_images"]

#: Image attribute keys labkit keeps for itself: gold answers live in their own table.
RESERVED_ATTRIBUTES = frozenset({"gold"})

#: The fix for an image id or path the project does not have.
LIST_IMAGES = Fix("project.images() lists the project's images (ids and paths)",
                  command("images", "list", "-P", PROJECT) + " lists the project's images (ids and paths)")


class ImageRow(NamedTuple):
    """What an import needs of a stored image (:meth:`ImageRepository.all_rows`)."""

    id: int
    path: str  # as stored (relative to the project's images root where it is inside it)
    width: int
    height: int
    subject: str | None
    consent: str | None
    attributes: dict[str, Any] | None


class ImageRepository:
    """The project's images (table ``images``) and the audited ways to read them."""

    def __init__(self, ctx: StoreContext, subjects: SubjectRepository):
        self._ctx = ctx
        self._subjects = subjects

    def add(self, paths_or_folder: str | Path | Iterable[str | Path] | None = None, *, split: str | None = None,
            subject: str | Sequence[str | None] | None = None,
            attributes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
            consent: str = "unknown", purpose: str | None = None, progress: bool = True,
            max_pixels: int | None | Literal["limits"] = "limits", manifest: Any = None,
            client: Any = None) -> list[int]:
        """Add image files; return their new ids in input order. Admins only.

        Every file is decoded and hashed first; if any is missing, unreadable, corrupt or
        already in the project, an :class:`~labkit.ImageError` lists them all and nothing
        is added. Files are read by 4 threads (PIL and hashlib release the GIL), or by the
        workers of a Dask cluster (``client``).

        Parameters
        ----------
        paths_or_folder : path, folder or iterable of paths
            A folder is searched recursively for image files (sorted by path).
        split : str, optional
            e.g. ``"train"``, ``"val"``, ``"test"``.
        subject : str or sequence of str, optional
            The data subject (person) each image shows: one for all, or one per image
            (for example the AI-Hub ``metaid``). New subjects are registered with
            ``consent`` and ``purpose``; see ``project.subjects()``.
        attributes : dict or sequence of dict, optional
            Image attributes (e.g. ``{"inst": "S", "image": "rgb"}``): one for all, or one per image.
        consent : {"given", "unknown"}
            Consent status recorded for new subjects (existing ones keep theirs; a subject
            who withdrew consent cannot be given new images).
        purpose : str, optional
            What the subjects' data may be used for, recorded with new subjects.
        progress : bool, default True
            Show a progress bar while files are read (50 files or more).
        max_pixels : int or None, optional
            Refuse images with more pixels (width x height); ``None`` for no limit. Default:
            ``labkit.formats.limits.max_image_pixels`` (89,478,485, as PIL's
            ``Image.MAX_IMAGE_PIXELS``; the command line reads ``LABKIT_MAX_IMAGE_PIXELS``).
            A larger image is refused from its header, before it is decoded.
        manifest : DataFrame or path to a .csv / .parquet file, optional
            Register images whose sizes and hashes you already know, without reading them:
            columns ``path``, ``width``, ``height``, ``sha256`` (optional ``split``,
            ``subject``). Instead of ``paths_or_folder``. The files must exist; their
            contents are checked later by ``labkit verify`` (which re-hashes them), so a
            wrong hash is found, never silently used. For millions of files that were
            hashed once already (e.g. a dataset's published checksums).
        client : distributed.Client, optional
            Read and hash the files on this Dask cluster's workers (they need the same
            paths); the project is written here, in one transaction.

        Examples
        --------
        >>> import pandas as pd
        >>> m = pd.DataFrame({"path": ["a.png"], "width": [64], "height": [48], "sha256": ["0" * 64]})
        >>> # project.add_images(manifest=m)   # registers a.png without reading it
        """
        if manifest is not None:
            if paths_or_folder is not None:
                raise ProjectError("pass either paths_or_folder or manifest=, not both; nothing was added")
            table = read_manifest(manifest)
            paths = [Path(p) for p in table["path"]]
            subject = table["subject"].tolist() if "subject" in table and subject is None else subject
        elif paths_or_folder is None:
            raise ProjectError("add_images needs files, a folder or manifest=; nothing was added")
        else:
            paths = expand_paths(paths_or_folder)
        n = len(paths)
        subjects = _per_image(subject, n, "subject", str)
        attrs = _per_image(attributes, n, "attributes", Mapping)
        bad = [p for s in dict.fromkeys(x for x in subjects if x is not None)
               if (p := name_problem(s, "subject")) is not None]
        if bad:
            raise ProjectError("invalid subject ids; nothing was added: " + "; ".join(bad[:10]))
        one = attributes is None or isinstance(attributes, Mapping)
        for i, a in enumerate(attrs[:1] if one else attrs):
            what = "attributes" if one else f"attributes[{i}]"
            if a is not None and not isinstance(a, Mapping):
                raise ProjectError(f"{what} is {type(a).__name__}; expected a dict (or None); nothing was added")
            try:
                check_json(dict(a or {}), what)
            except ValueError as exc:
                raise ProjectError(f"{exc}; nothing was added") from None
        stored = [self._ctx.stored_path(p) for p in paths]
        counts = Counter(stored)
        dup_in_call = sorted(s for s, k in counts.items() if k > 1)
        if dup_in_call:
            raise ImageError(f"these paths are given more than once; nothing was added: {dup_in_call[:20]}")
        if manifest is not None:
            infos = manifest_infos(table, max_pixels=max_pixels)
            splits = table["split"].tolist() if "split" in table and split is None else [split] * n
        else:
            infos = inspect_images(paths, progress=progress, max_pixels=max_pixels, client=client)
            splits = [split] * n

        def fn(conn: sa.Connection) -> list[int]:
            self._ctx.policy.require_admin(conn, "add_images", "add images")
            consents = self._subjects.register(conn, subjects, consent=consent, purpose=purpose)
            existing = [p for chunk in chunks(stored) for p in conn.execute(
                sa.select(S.images.c.path).where(S.images.c.path.in_(chunk))).scalars()]
            if existing:
                raise ImageError(f"{len(existing)} image(s) are already in the project; nothing was added: "
                                 f"{sorted(existing)[:20]}", fix=Fix(
                                     "pass only new files; project.images() lists those in the project",
                                     "pass only new files; " + command("images", "list", "-P", PROJECT)
                                     + " lists those in the project"))
            ids = self.insert(conn, infos, split=splits, subjects=subjects, attributes=attrs, consents=consents)
            self._ctx.audit(conn, "add_images", target="images", count=len(ids),
                            first_id=ids[0] if ids else None, split=split, manifest=manifest is not None)
            return ids
        with no_gc():
            return self._ctx.write(fn)

    def table(self, *, split: str | None = None, subject: str | None = None,
              include_withdrawn: bool = False) -> pd.DataFrame:
        """Images indexed by id (``image``): path, sha256, width, height, split, subject,
        attributes, added_at, consent.

        Images whose subject withdrew consent are left out (so training, scoring,
        assignment and export skip them); an admin may ask for them with
        ``include_withdrawn`` (anyone else is refused). Annotators see only the images
        assigned to them, without subject ids.
        """
        stmt = sa.select(*S.IMAGE_COLUMNS).order_by(S.images.c.id)
        if split is not None:
            stmt = stmt.where(S.images.c.split == split)
        if subject is not None:
            stmt = stmt.where(S.images.c.subject == subject)
        if not include_withdrawn:
            stmt = stmt.where(S.not_withdrawn(S.images.c.consent))

        def fn() -> pd.DataFrame:
            with self._ctx.connect() as conn:
                me = self._ctx.policy.actor(conn)
                self._ctx.policy.check_withdrawn_reads(conn, "read_images", include_withdrawn, me)
                q = stmt
                if me.role == "annotator":  # nor may the query name the subject (PostgreSQL: no column grant)
                    q = q.where(S.images.c.id.in_(sa.select(S.assignments.c.image_id).where(
                        S.assignments.c.annotator_id == me.id)))
                else:
                    q = q.add_columns(S.images.c.subject)
                df = self._ctx.read_frame(q, conn).rename(columns={"id": "image"}).set_index("image")
            if me.role == "annotator":
                df["subject"] = None
            return df[[c.name for c in S.images.c if c.name != "id"]]
        return self._ctx.guard(fn)

    def set_attributes(self, image: int | str | Path, attributes: Mapping[str, Any], *,
                       by: str | None = None) -> dict:
        """Merge ``attributes`` into an image's attributes (``None`` removes a key); return the result.

        The change is written to the audit log with the previous values, so it can be
        undone. The key ``"gold"`` is reserved: gold answers are kept apart, where
        annotators cannot read them (:func:`labkit.services.add_gold`). ``by``, if it
        names someone other than you (admins only), is recorded as ``on_behalf_of``.
        """
        check_json(dict(attributes), "attributes")
        if RESERVED_ATTRIBUTES & set(attributes):
            raise ValueError(f"the image attribute {sorted(RESERVED_ATTRIBUTES & set(attributes))[0]!r} is reserved: "
                             "gold answers are set with labkit.services.add_gold(project, {image: label}), which "
                             "keeps them from annotators; nothing was changed")

        def fn(conn: sa.Connection) -> dict:
            row = self.row(conn, image, action="set_image_attributes", write=True)
            self._ctx.policy.check_annotation_writes(conn, "set_image_attributes", [], [row.id], by=by)
            old = dict(row.attributes or {})
            new = {k: v for k, v in {**old, **attributes}.items() if v is not None}
            conn.execute(sa.update(S.images).where(S.images.c.id == row.id).values(attributes=new))
            self._ctx.audit(conn, "set_image_attributes", target="images", target_id=row.id, on_behalf_of=by,
                            before={k: old.get(k) for k in attributes}, after=dict(attributes))
            return new
        return self._ctx.write(fn)

    def path(self, image: int | str | Path) -> Path:
        """Absolute path of an image file (the same rules as :meth:`read`; not logged: nothing is read)."""
        def check() -> Any:
            with self._ctx.connect() as conn:
                row = self.row(conn, image, action="image_path")
                self._ctx.policy.check_image_reads(conn, "image_path", [row.id])
            return row
        return self._ctx.resolve(self._ctx.guard(check).path)

    # ----------------------------------------------------------- the readers --
    def read(self, image: int | str | Path, *, verify: bool = True) -> np.ndarray:
        """The image as ``(H, W, 3)`` uint8 RGB; with ``verify``, its bytes must match the stored hash.

        Annotators read only images assigned to them; nobody but an admin reads an image
        whose subject withdrew consent. The first read of each image by this project
        object is written to the audit log (who read what, for the privacy report).
        """
        def check() -> Any:
            with self._ctx.connect() as conn:
                row = self.row(conn, image, action="read_image")
                self._ctx.policy.check_image_reads(conn, "read_image", [row.id])
            return row
        row = self._ctx.guard(check)
        self._ctx.log_access("read_image", row.id)
        path = self._ctx.resolve(row.path)
        if not path.exists():
            raise ImageError(f"image {row.id} is missing: {path} (moved or deleted since import)")
        if verify and sha256_file(path) != row.sha256:
            raise ImageError(f"image {row.id} changed since import: {path} no longer matches its "
                             "sha256; restore the original file or re-import it")
        return load_rgb(path)

    def files(self, images: Sequence[int] | None = None, *, purpose: str) -> pd.DataFrame:
        """The files of ``images`` for a program that reads them in bulk, logged as one access.

        For readers that decode images elsewhere (DataLoader workers, thread pools): pool
        training and scoring, the audit's file checks. The same rules as :meth:`read`
        apply to every image; one audit entry (``read_images``) records the purpose and
        the image ids. The caller checks each file's bytes against ``sha256`` as it reads.

        Parameters
        ----------
        images : sequence of int, optional
            Image ids (default: every image :meth:`table` shows the reader).
        purpose : str
            Why they are read, for the privacy report (e.g. ``"pool training"``).

        Returns
        -------
        DataFrame
            Indexed by image id, in the order given: ``path`` (absolute ``Path``),
            ``sha256`` (recorded at import), ``width``, ``height``.
        """
        if not isinstance(purpose, str) or not purpose.strip():
            raise ValueError(f"purpose is {purpose!r}; say why the images are read (e.g. 'pool training')")
        if images is None:
            table = self.table()
            ids = [int(i) for i in table.index]
        else:
            ids = [int(i) for i in images]

        def check() -> list[Any]:
            with self._ctx.connect() as conn:
                rows = {r.id: r for r in self.rows(conn, ids, action="read_images")}
                self._ctx.policy.check_image_reads(conn, "read_images", list(rows))
            return [rows[i] for i in ids]
        rows = self._ctx.guard(check)
        if rows:
            self._ctx.log_bulk_access("read_images", ids, purpose=purpose)
        return pd.DataFrame({"path": [self._ctx.resolve(r.path) for r in rows],
                             "sha256": [r.sha256 for r in rows], "width": [r.width for r in rows],
                             "height": [r.height for r in rows]},
                            index=pd.Index(ids, name="image", dtype=np.int64))

    # ------------------------------------------------- inside a transaction --
    def row(self, conn: sa.Connection, image: int | str | Path, *, action: str = "read_image",
            write: bool = False) -> Any:
        """The ``images`` row of an id or path (without ``subject``); ProjectError if there is none.

        See :meth:`rows` for ``action`` and ``write``.
        """
        return self.rows(conn, [image], action=action, write=write)[0]

    def rows(self, conn: sa.Connection, images: Sequence[int | str | Path], *, action: str = "read_images",
             write: bool = False) -> list[Any]:
        """The ``images`` rows of ids or paths, in order; one ProjectError naming every missing one.

        An image that exists but that the member's database login may not read
        (PostgreSQL) is refused as ``action`` (a ``write`` or a read), with the API's reason.
        """
        rows = self.find(conn, images)
        missing = [image for image, row in zip(images, rows) if row is None]
        if missing:
            ids = [int(i) for i in missing if not isinstance(i, (str, Path))]
            self._ctx.policy.refuse_hidden_images(conn, action, ids, write=write)
            raise missing_images(missing)
        return rows

    def find(self, conn: sa.Connection, images: Sequence[int | str | Path]) -> list[Any]:
        """The ``images`` row (without ``subject``) of each id or path, ``None`` where there is none
        the member may read (two queries)."""
        paths = {i: self._ctx.stored_path(Path(i)) for i in images if isinstance(i, (str, Path))}
        ids = [int(i) for i in images if not isinstance(i, (str, Path))]
        img = S.images.c
        cols = S.IMAGE_COLUMNS
        by_id = {r.id: r for chunk in chunks(ids) for r in conn.execute(sa.select(*cols).where(img.id.in_(chunk)))}
        by_path = {r.path: r for chunk in chunks(list(set(paths.values())))
                   for r in conn.execute(sa.select(*cols).where(img.path.in_(chunk)))}
        return [by_path.get(paths[i]) if isinstance(i, (str, Path)) else by_id.get(int(i)) for i in images]

    def insert(self, conn: sa.Connection, infos: Sequence[ImageInfo], *, split: str | None | Sequence[str | None],
               subjects: Sequence[str | None], attributes: Sequence[Mapping[str, Any] | None],
               consents: Mapping[str, str]) -> list[int]:
        """Insert checked images (the caller checked rights and duplicates) in bulk; return their ids."""
        if not infos:
            return []
        splits = [split] * len(infos) if split is None or isinstance(split, str) else list(split)
        t = stored_time(conn, S.images.c.added_at, utc_now())
        paths = [self._ctx.stored_path(info.path) for info in infos]
        before = conn.execute(sa.select(sa.func.coalesce(sa.func.max(S.images.c.id), 0))).scalar_one()
        insert_many(conn, S.images, ("path", "sha256", "width", "height", "split", "subject", "attributes",
                                     "added_at", "consent"),
                    ((path, info.sha256, info.width, info.height, sp, sub, encode_json(dict(at or {})), t,
                      consents.get(sub) if sub is not None else None)
                     for path, info, sp, sub, at in zip(paths, infos, splits, subjects, attributes)))
        # ids in input order: ours are the new rows with these paths (paths are unique)
        found = dict(conn.execute(sa.select(S.images.c.path, S.images.c.id).where(S.images.c.id > before)).all())
        return [int(found[p]) for p in paths]

    def all_rows(self, conn: sa.Connection) -> list[ImageRow]:
        """Every image (for matching an import's file names), whatever :meth:`table` filters.

        One query of the columns an import uses, the driver's tuples as they come and the
        attributes decoded in one pass (COCO train2017's 118,287 images: 0.2 s, not 1 s).
        """
        img = S.images.c
        res = conn.execute(sa.select(img.id, img.path, img.width, img.height, img.subject, img.consent,
                                     raw(conn, img.attributes)).order_by(img.id))
        rows = res.cursor.fetchall()
        res.close()
        if not rows:
            return []
        *columns, attributes = zip(*rows)
        return list(map(ImageRow._make, zip(*columns, decode_json(list(attributes)))))

    def fill_in(self, conn: sa.Connection, rows: Sequence[Any], *,
                attributes: Sequence[Mapping[str, Any] | None], subjects: Sequence[str | None],
                consents: Mapping[str, str]) -> int:
        """Add the attributes (and subjects) an import names to images that lack them; return how many changed.

        The images' own attribute values win; a subject is set only where an image had
        none. One ``UPDATE`` per batch of changed images (an import of COCO's 118k images,
        each with new ``license``/``coco_url`` fields, would otherwise send 118k statements).
        """
        ids: list[int] = []
        merged: list[dict[str, Any]] = []
        new_subjects: list[str | None] = []
        new_consents: list[str | None] = []
        for row, extra, subject in zip(rows, attributes, subjects):
            if row.attributes:  # its own values win
                both = {**dict(extra or {}), **row.attributes}
                same = both == row.attributes
            else:  # (the usual case: an image registered without attributes)
                both = dict(extra or {})
                same = not both
            new_subject = row.subject or subject
            if same and new_subject == row.subject:
                continue
            ids.append(row.id)
            merged.append(both)
            new_subjects.append(new_subject)
            new_consents.append(row.consent if new_subject == row.subject or new_subject is None
                                else consents.get(new_subject))
        if not ids:
            return 0
        texts = encode_many(merged)
        if conn.dialect.name == "postgresql":
            sql = ("UPDATE images SET attributes = u.a::json, subject = u.s, consent = u.c FROM "
                   "unnest(%b::integer[], %b::text[], %b::text[], %b::text[]) AS u(i, a, s, c) WHERE images.id = u.i")
            for at in range(0, len(ids), BATCH):
                pg_execute(conn, sql, [c[at:at + BATCH] for c in (ids, texts, new_subjects, new_consents)])
        else:
            conn.exec_driver_sql("UPDATE images SET attributes = ?, subject = ?, consent = ? WHERE id = ?",
                                 list(zip(texts, new_subjects, new_consents, ids)))
        return len(ids)

    def all_files(self, conn: sa.Connection) -> list[tuple[int, Path, str]]:
        """``(id, absolute path, sha256)`` of every row, whatever filters :meth:`table` applies."""
        img = S.images.c
        rows = conn.execute(sa.select(img.id, img.path, img.sha256).order_by(img.id)).all()
        return [(int(r.id), self._ctx.resolve(r.path), r.sha256) for r in rows]


def read_manifest(manifest: Any) -> pd.DataFrame:
    """A manifest as a checked table: ``path`` (absolute), ``width``, ``height``, ``sha256`` (+ ``split``, ``subject``).

    Relative paths are taken relative to the manifest file's folder (a DataFrame's: to
    the working directory). Checked column by column; one :class:`~labkit.ImageError`
    lists every bad row.
    """
    base = Path.cwd()
    if isinstance(manifest, pd.DataFrame):
        table, where = manifest.copy(), "the manifest"
    else:
        path = Path(manifest)
        if not path.is_file():
            raise ImageError(f"no manifest file {path}", fix=Fix(
                "give a .csv or .parquet file with columns path, width, height, sha256"))
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ImageError(f"manifest {path} is neither .csv nor .parquet",
                             fix=Fix("save it with DataFrame.to_csv(...) or DataFrame.to_parquet(...)"))
        table = pd.read_csv(path, dtype={"path": str, "sha256": str, "split": str, "subject": str},
                            keep_default_na=False, na_values=[""]) if suffix == ".csv" else pd.read_parquet(path)
        where, base = str(path), path.resolve().parent
    need = ["path", "width", "height", "sha256"]
    if missing := [c for c in need if c not in table]:
        raise ImageError(f"{where} lacks column(s) {missing}; it has {list(table.columns)}",
                         fix=Fix("a manifest has columns path, width, height, sha256 (and optional split, subject)"))
    problems: list[str] = []

    def bad(mask: Any, why: str) -> None:
        rows = np.flatnonzero(np.asarray(mask, bool))
        if len(rows):
            problems.append(f"rows {rows[:10].tolist()}{' ...' if len(rows) > 10 else ''} ({len(rows)}): {why}")

    paths = table["path"]
    bad(~paths.map(lambda v: isinstance(v, str) and bool(v)), "path is not a file name")
    for col in ("width", "height"):
        values = pd.to_numeric(table[col], errors="coerce")
        bad(~(values.notna() & (values > 0) & (values == values.round())), f"{col} is not a positive integer")
        table[col] = values.fillna(0).astype(np.int64)
    sha = table["sha256"].astype(str).str.lower()
    bad(~sha.str.fullmatch(r"[0-9a-f]{64}"), "sha256 is not 64 hexadecimal digits")
    table["sha256"] = sha
    if problems:
        raise ImageError(f"{where}: {len(problems)} problem(s); nothing was added:\n  " + "\n  ".join(problems))
    table["path"] = [p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p)) for p in paths]
    for col in ("split", "subject"):
        if col in table:
            table[col] = table[col].astype(object).where(table[col].notna(), None)
    return table.reset_index(drop=True)


def manifest_infos(table: pd.DataFrame, *, max_pixels: int | None | Literal["limits"] = "limits") -> list[ImageInfo]:
    """ImageInfo of each manifest row, without reading the files: they must exist and be within the pixel limit."""
    from labkit._util.checks import limits

    limit = limits.max_image_pixels if max_pixels == "limits" else max_pixels
    paths = table["path"].tolist()
    with ThreadPoolExecutor(max_workers=8) as pool:
        exists = list(pool.map(os.path.isfile, paths, chunksize=256))
    problems = [f"  {p}: file not found" for p, ok in zip(paths, exists) if not ok]
    if limit is not None:
        big = (table["width"] * table["height"]).to_numpy() > limit
        problems += [f"  {p}: {w}x{h} is more than labkit's limit of {limit:,} pixels (limits.max_image_pixels)"
                     for p, w, h in zip(table["path"][big], table["width"][big], table["height"][big])]
    if problems:
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise ImageError(f"{len(problems)} manifest row(s) cannot be added; nothing was added:\n"
                         + "\n".join(problems[:50]) + more)
    return [ImageInfo(path=Path(p), sha256=h, width=int(w), height=int(ht))
            for p, h, w, ht in zip(paths, table["sha256"].tolist(), table["width"].tolist(), table["height"].tolist())]


def missing_images(missing: Sequence[int | str | Path]) -> ProjectError:
    """The error for image ids or paths the project does not have: all of them (the first 20 shown)."""
    shown = [str(m) if isinstance(m, Path) else m for m in dict.fromkeys(missing)]
    more = f" (and {len(shown) - 20} more)" if len(shown) > 20 else ""
    what = f"image {shown[0]!r}" if len(shown) == 1 else f"images {shown[:20]}{more}"
    return ProjectError(f"no {what} in the project", fix=LIST_IMAGES)


def _per_image(value: Any, n: int, what: str, one_type: Any) -> list:
    if value is None or isinstance(value, one_type):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ProjectError(f"{what} has {len(values)} entries for {n} images; give one value for all "
                           "images or exactly one per image")
    return values
