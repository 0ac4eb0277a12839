"""Import of annotation files, through the readers of ``labkit.formats`` (export: :mod:`labkit.services.export`).

An import validates everything against the project first (images present, sizes equal,
classes known, geometry in bounds) and then writes images, annotators and annotations
in one transaction: it lands whole or not at all.
"""
from __future__ import annotations

import copy
import inspect
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import sqlalchemy as sa

from labkit._util.checks import json_message, json_problems, name_problem, unknown_names
from labkit._util.memory import no_gc
from labkit.formats._columns import IntFields, JsonTexts, ObjectColumns
from labkit.geometry.bulk import normalize_many
from labkit.store import schema as S
from labkit.store.bulk import deferred_indexes, encode_many, large_write, missing_ids, writes_behind
from labkit.store.classes import add_classes_fix
from labkit.store.errors import PROJECT, Fix, FixableError, ImageError, command
from labkit.store.files import find_in_folder, inspect_images
from labkit.store.protocol import StoredProject
from labkit.store.rows import is_source

__all__ = ["ImportProblem", "ImportSummary", "import_annotations"]

_MAX_PROBLEMS = 30

#: COCO and Label Studio files from this size on are streamed (``coco.stream``,
#: ``labelstudio.stream``): memory bounded by a batch.
STREAM_BYTES = 64 * 2**20
#: Batches of a streamed import read and laid out ahead of the one the database is storing:
#: the reader never waits on the database for a batch, nor the database on the reader (four
#: batches of 25,000 objects hold ~40 MB).
WRITES_AHEAD = 4


class ImportProblem(FixableError, ValueError):
    """An annotation file does not fit the project; nothing was imported."""


@dataclass
class ImportSummary:
    """What an import added."""
    images_added: int = 0
    annotations_added: int = 0
    annotators_added: list[str] = field(default_factory=list)
    images_updated: int = 0

    def __str__(self) -> str:
        return (f"{self.annotations_added} annotations, {self.images_added} new images, "
                f"{self.images_updated} images with new attributes, "
                f"{len(self.annotators_added)} new annotators")


def _streamed(format: str, path: Path, annotator: str | None, options: dict[str, Any]) -> bool:
    """Whether to stream the file (big COCO and Label Studio files; the readers' defaults)."""
    fits = {"coco": annotator is not None and not options, "labelstudio": set(options) <= {"data_key"}}
    return fits.get(format, False) and path.is_file() and path.stat().st_size >= STREAM_BYTES


def _image_problems(ds: Any) -> list[str]:
    """What the API would refuse in the image records a reader returned (the readers check most of it too).

    Free-form JSON (image attributes) must be storable (:func:`~labkit._util.checks.check_json`:
    finite numbers, valid Unicode), subjects valid names
    (:func:`~labkit._util.checks.name_problem`), image keys distinct non-empty strings.
    """
    problems: list[str] = []
    keys: set[str] = set()
    for rec in ds.images:
        where = rec.where or str(rec.key)
        if not isinstance(rec.key, str) or not rec.key:
            problems.append(f"{where}: image key {rec.key!r} is not a file name")
            continue
        if rec.key in keys:
            problems.append(f"{where}: image {rec.key!r} is listed twice")
        keys.add(rec.key)
        if rec.subject is not None and (p := name_problem(rec.subject, "subject")) is not None:
            problems.append(f"{where}: {p}")
    images = [rec for rec in ds.images if isinstance(rec.key, str) and rec.key]
    for i, p in json_problems([dict(rec.attributes or {}) for rec in images], "attributes").items():
        problems.append(f"{images[i].where or str(images[i].key)}: {json_message('attributes', p)}")
    return problems


@dataclass
class _Checked:
    """Objects that passed the import's checks, column by column.

    ``at`` is each object's position in the dataset's ``images``; ``workers`` is None
    when no object names one.
    """
    at: Any  # int array (N,)
    kinds: list[str]
    labels: list[str]
    geometry: Sequence[Any]  # a list, or JsonTexts
    scores: list[float | None] | None
    provenance: Sequence[dict[str, Any]]  # a list, or IntFields
    workers: list[str | None] | None

    def __len__(self) -> int:
        return len(self.kinds)


class _Objects:
    """The import's checks of a file's objects, whole or a batch at a time (a streamed file).

    :meth:`check` returns the objects it accepts with their canonical geometry and keeps
    what it refuses; the problems come out in the order the whole-file import lists them.
    """

    def __init__(self, format: str, annotator: str | None, sizes: dict[str, tuple[int, int]],
                 records: dict[str, Any], images: list[Any]):
        self.format, self.annotator, self.sizes, self.records = format, annotator, sizes, records
        self.position = {rec.key: i for i, rec in enumerate(images) if isinstance(rec.key, str)}
        wh = np.array([sizes.get(rec.key, (np.nan, np.nan)) if isinstance(rec.key, str) else (np.nan, np.nan)
                       for rec in images], dtype=float).reshape(-1, 2)
        self.width, self.height = wh[:, 0], wh[:, 1]  # of each image in the dataset's order (NaN: not placed)
        self._clear()

    def _clear(self) -> None:
        self.provenance: list[str] = []  # provenance that is not storable JSON
        self.scores: list[str] = []
        self.workers: dict[str, str] = {}  # "<format>:<worker>" -> where first seen
        self.labels: dict[str, None] = {}  # class names in order of first use
        self.unworked = False  # an object names no annotator
        self.unplaced: list[str] = []
        self.geometry: list[str] = []

    def anew(self) -> _Objects:
        """A check of the same file's objects from the start, sharing the image lookups (not built again)."""
        other = copy.copy(self)
        other._clear()
        return other

    def check(self, objects: Sequence[Any]) -> _Checked:
        """The ``objects`` that pass, with their canonical geometry; the rest are problems."""
        if isinstance(objects, ObjectColumns):
            return self._columns(objects)
        for i, p in json_problems([dict(o.provenance or {}) for o in objects], "provenance").items():
            self.provenance.append(f"{objects[i].where or str(objects[i].image_key)}: "
                                   f"{json_message('provenance', p)}")
        for o in objects:
            if o.score is not None and not (isinstance(o.score, (int, float)) and math.isfinite(o.score)):
                self.scores.append(f"{o.where or str(o.image_key)}: score is {o.score!r}; expected a finite number")
            if o.worker is None:
                self.unworked = True
            elif self.annotator is None:
                self.workers.setdefault(f"{self.format}:{o.worker}", o.where or str(o.image_key))
        self.labels.update(dict.fromkeys(o.label for o in objects))
        sizes = self.sizes
        placed = [o for o in objects if o.image_key in sizes]
        self.unplaced += [f"{o.where or o.image_key}: refers to image {o.image_key!r}, which the file does not list"
                          for o in objects if o.image_key not in sizes and o.image_key not in self.records]
        wh = [sizes[o.image_key] for o in placed]
        geometries, bad = normalize_many([o.kind for o in placed], [o.geometry for o in placed],
                                         [s[0] for s in wh], [s[1] for s in wh])
        self.geometry += [f"{placed[i].where or placed[i].image_key}: {why}" for i, why in bad.items()]
        ok = [(o, g) for i, (o, g) in enumerate(zip(placed, geometries)) if i not in bad]
        return _Checked(at=np.array([self.position[o.image_key] for o, _ in ok], dtype=np.int64),
                        kinds=[o.kind for o, _ in ok], labels=[o.label for o, _ in ok], geometry=[g for _, g in ok],
                        scores=[o.score for o, _ in ok], provenance=[o.provenance or {} for o, _ in ok],
                        workers=[o.worker for o, _ in ok])

    def _columns(self, c: ObjectColumns) -> _Checked:
        """:meth:`check` of a reader's columns: its geometry's extent against the image sizes, as arrays.

        The rows this does not vouch for (out of bounds, a mask of another size) go through
        :func:`~labkit.geometry.bulk.normalize_many`, which accepts them or says why not.
        """
        n = len(c)
        self.unworked |= n > 0  # no object of a reader's columns names its worker
        self.labels.update(dict.fromkeys(c.labels))
        w, h = self.width[c.at], self.height[c.at]
        placed = ~np.isnan(w)  # the image of every object is listed: those not placed had a problem of their own
        x0, y0, x1, y1 = c.extent.T
        tol = 1.0  # normalize_many's
        with np.errstate(invalid="ignore"):
            ok = placed & (x0 >= -tol) & (y0 >= -tol) & (x1 <= w + tol) & (y1 <= h + tol)
        for i in np.flatnonzero(placed & np.isnan(x0)).tolist():  # masks: their size is the image's
            ok[i] = c.geometry[i]["size"] == [h[i], w[i]]
        geometry = c.geometry
        again = np.flatnonzero(placed & ~ok).tolist()
        if again:
            fixed, bad = normalize_many([c.kinds[i] for i in again], [geometry[i] for i in again],
                                        w[again].tolist(), h[again].tolist())
            self.geometry += [f"{c[again[j]].where}: {why}" for j, why in bad.items()]
            good = {i: fixed[j] for j, i in enumerate(again) if j not in bad}
            ok[list(good)] = True
            if isinstance(geometry, JsonTexts):
                geometry = geometry.replaced(good)
            else:
                geometry = [good.get(i, g) for i, g in enumerate(geometry)]
        if ok.all():
            return _Checked(at=c.at, kinds=c.kinds, labels=c.labels, geometry=geometry, scores=c.scores,
                            provenance=c.provenance, workers=None)
        keep = np.flatnonzero(ok).tolist()
        return _Checked(at=c.at[keep], kinds=[c.kinds[i] for i in keep], labels=[c.labels[i] for i in keep],
                        geometry=(geometry.take(keep) if isinstance(geometry, JsonTexts)
                                  else [geometry[i] for i in keep]),
                        scores=None if c.scores is None else [c.scores[i] for i in keep],
                        provenance=c.provenance.take(keep) if isinstance(c.provenance, IntFields)
                        else [c.provenance[i] for i in keep], workers=None)

    @property
    def refused(self) -> bool:
        return bool(self.provenance or self.scores or self.unplaced or self.geometry)

    def worker_problems(self, known: set[str]) -> list[str]:
        """New annotators the file names must have valid names."""
        return [f"{where}: {p}" for name, where in self.workers.items()
                if name not in known and (p := name_problem(name, "annotator name")) is not None]


def _same_files(to_add: dict[str, Path]) -> list[str]:
    """Two keys of one file that name the same image on disk (``a.png`` and ``sub/../a.png``) would add it twice."""
    seen: dict[Path, str] = {}
    out = []
    for key, f in to_add.items():
        real = f.resolve()
        if real in seen:
            out.append(f"image {key!r} is the same file as {seen[real]!r} ({f}); list each image once")
        seen.setdefault(real, key)
    return out


def _fail(path, problems: list[str], fixes: list[Fix]) -> None:
    more = f"\n  ... and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
    raise ImportProblem(f"cannot import {path}: {len(problems)} problem(s); the project is unchanged:\n  "
                        + "\n  ".join(problems[:_MAX_PROBLEMS]) + more, fix=Fix.join(fixes))


def _name(path: str) -> str:
    """``PurePosixPath(path).name``, without building a path for the usual plain ``folder/file.png``."""
    if path.endswith(("/", "/.")) or "//" in path or "/./" in path or path in (".", ""):
        return PurePosixPath(path).name
    return path.rsplit("/", 1)[-1]


class _ImageIndex:
    """Match a file's image keys to project images: exact stored path, path suffix, basename."""

    def __init__(self, rows: list[Any]):
        self.by_path = {r.path: r for r in rows}
        names = [_name(r.path) for r in rows]
        self.one_named = dict(zip(names, rows))  # a file name -> its image (the last, where several have it)
        self.by_name: dict[str, list] = {}  # file names several images have -> those images
        if len(self.one_named) < len(rows):
            shared = {n for n, k in Counter(names).items() if k > 1}
            for n, r in zip(names, rows):
                if n in shared:
                    self.by_name.setdefault(n, []).append(r)

    def find(self, key: str):
        """The project image ``key`` names and None, or None and why it names none (None: not in the project)."""
        key = key.replace("\\", "/")
        if key in self.by_path:
            return self.by_path[key], None
        name = _name(key)
        cands = self.by_name.get(name)
        if cands is None:
            return self.one_named.get(name), None
        suffix = [r for r in cands if r.path.endswith("/" + key.lstrip("./")) or r.path == key]
        if len(suffix) == 1:
            return suffix[0], None
        return None, f"matches {len(cands)} project images by file name ({[r.path for r in cands][:3]}); " \
                     "use paths in the file that tell them apart"


def import_annotations(project: StoredProject, path: str | Path, *, format: str, annotator: str | None = None,
                       images_dir: str | Path | None = None, add_classes: bool = False,
                       source: str | None = None, as_proposals: bool = False,
                       **reader_options: Any) -> ImportSummary:
    """Import an annotation file made by another tool, in one transaction.

    Parameters
    ----------
    path : path
        The file (or folder, for per-image formats such as ``aihub``).
    format : str
        One of :func:`labkit.formats.list_formats` with a reader.
    annotator : str, optional
        Who the annotations are attributed to (created as an ``annotator`` if new).
        Required unless the file names its annotators (Label Studio's ``completed_by``),
        which then become annotators named ``"<format>:<id>"``.
    images_dir : path, optional
        Where to find images the file mentions that are not yet in the project; they
        are added in the same transaction. Without it, such images are an error. A
        file name is looked up relative to this folder, then by its base name; a name
        that is absolute, climbs out with ``..`` or is a link to a file outside the
        folder is refused: an import reads no file outside ``images_dir``.
    add_classes : bool
        Add classes the project does not have yet, instead of failing.
    source : str, optional
        Provenance source (default ``"import:<format>"``).
    as_proposals : bool, default False
        Store the file's objects as proposals awaiting review (a vendor's or a model's
        pre-labels): they are not delivered labels until a reviewer accepts them
        (``project.proposals()``, ``Labeler(..., review=True)``; ``docs/prelabel.md``).
    **reader_options
        Passed to the format's reader. Readers that need image sizes (YOLO) get the
        project's own, keyed by file name, unless ``image_sizes`` is given.

    Raises
    ------
    labkit.formats.FormatError
        The file itself is malformed (truncated, missing keys, bad records).
    ImportProblem
        The file does not fit the project (missing images, size mismatch, unknown
        classes, geometry out of bounds). The message lists every problem.
    """
    with no_gc():  # a million records: the collector would run thousands of times for nothing
        return _import_annotations(project, path, format=format, annotator=annotator, images_dir=images_dir,
                                   add_classes=add_classes, source=source, as_proposals=as_proposals,
                                   **reader_options)


def _import_annotations(project: StoredProject, path: str | Path, *, format: str, annotator: str | None,
                        images_dir: str | Path | None, add_classes: bool, source: str | None,
                        as_proposals: bool = False, **reader_options: Any) -> ImportSummary:
    from labkit.formats import get_reader

    store, policy = project.store, project.store.ctx.policy
    path = Path(path)
    store.ctx.require("import_annotations", "admin", what="import annotations")
    reader = get_reader(format)
    if "image_sizes" in inspect.signature(reader).parameters and "image_sizes" not in reader_options:
        imgs = project.images()
        reader_options["image_sizes"] = {PurePosixPath(p).name: (int(w), int(h)) for p, w, h in
                                         zip(imgs["path"], imgs["width"], imgs["height"])}
    if _streamed(format, path, annotator, reader_options):
        from labkit.formats import coco, labelstudio

        ds = coco.stream(path) if format == "coco" else labelstudio.stream(path, **reader_options)
    else:
        ds = reader(path, **reader_options)
    source = source or f"import:{format}"
    if not is_source(source):
        raise ValueError(f"source={source!r} is not a provenance source; use one of {list(S.SOURCES)} or "
                         f"'import:<tool>' (the default is 'import:{format}'); nothing was imported")
    if as_proposals and source not in S.PROPOSAL_SOURCES and not source.startswith("import:"):
        raise ValueError(f"proposals are made by a model or a vendor, not source={source!r}; use one of "
                         f"{list(S.PROPOSAL_SOURCES)} or 'import:<format>' (the default); nothing was imported")
    fixes: list[Fix] = []  # said once, after every problem

    with store.ctx.connect() as conn:
        index = _ImageIndex(store.images.all_rows(conn))
        class_ids = store.classes.ids(conn)
        known_annotators = {r.name: r for r in conn.execute(sa.select(S.annotators))}

    # 0. what every entry point checks (the API's rules): storable JSON, valid names
    image_problems = _image_problems(ds)

    # 1. images: match, or find on disk under images_dir
    problems: list[str] = []
    matched: dict[str, Any] = {}
    to_add: dict[str, Path] = {}
    for rec in ds.images:
        row, why = index.find(rec.key)
        if why:
            problems.append(f"{rec.where or rec.key}: image {rec.key!r} {why}")
        elif row is not None:
            matched[rec.key] = row
            if rec.width and rec.height and (rec.width, rec.height) != (row.width, row.height):
                problems.append(f"{rec.where or rec.key}: image {rec.key!r} is {rec.width}x{rec.height} in the "
                                f"file but {row.width}x{row.height} in the project (a different image?)")
        elif images_dir is not None:
            try:
                found = find_in_folder(images_dir, rec.key)
            except ImageError as exc:
                problems.append(f"{rec.where or rec.key}: image {exc.problem}")
                if exc.fix is not None:
                    fixes.append(exc.fix)
                continue
            if found is not None:
                to_add[rec.key] = found
            else:
                problems.append(f"{rec.where or rec.key}: image {rec.key!r} is neither in the project nor in "
                                f"{images_dir}")
        else:
            problems.append(f"{rec.where or rec.key}: image {rec.key!r} is not in the project")
            fixes.append(Fix("add the images first with project.add_images([...]), or pass images_dir='folder' "
                             "to add them with the import",
                             "add the images first with " + command("images", "add", "-P", PROJECT, "FILE...")
                             + ", or pass --images-dir FOLDER to add them with the import"))
    problems += _same_files(to_add)
    new_infos = {}
    if to_add and not problems:
        try:
            new_infos = dict(zip(to_add, inspect_images(list(to_add.values()))))
        except ImageError as exc:
            problems.append(str(exc))
    records = {rec.key: rec for rec in ds.images}
    sizes = {k: (r.width, r.height) for k, r in matched.items()}
    sizes.update({k: (i.width, i.height) for k, i in new_infos.items()})
    for k, info in new_infos.items():
        rec = records[k]
        if rec.width and rec.height and (rec.width, rec.height) != (info.width, info.height):
            problems.append(f"{rec.where or k}: image {k!r} is {rec.width}x{rec.height} in the file but "
                            f"{info.width}x{info.height} on disk")

    def verdict(objs: _Objects) -> tuple[list[str], list[Fix]]:
        """Every problem of the file, in the order the import lists them, and their fixes."""
        out = image_problems + objs.provenance + objs.scores + objs.worker_problems(set(known_annotators)) \
            + problems
        more: list[Fix] = []
        used_unknown = sorted(set(objs.labels) - set(class_ids))
        if used_unknown and not add_classes:  # 2. classes
            out.append(unknown_names(used_unknown, list(class_ids), "class", plural="classes",
                                     valid_as="the project has", limit=20))
            add = add_classes_fix(used_unknown)
            more.append(Fix(f"{add.python} if they are new, or pass add_classes=True",
                            f"{add.cli} if they are new, or pass --add-classes"))
        out += [f"cannot add class: {p}" for c in new_classes(objs) if (p := name_problem(c)) is not None]
        if annotator is None and objs.unworked:  # 3. annotators
            out.append(f"the {format} file does not name an annotator for every annotation")
            more.append(Fix("pass annotator='name'", "pass --annotator NAME"))
        workers = [annotator] if annotator else sorted(objs.workers)
        simulated = [n for n in workers if n in known_annotators and known_annotators[n].simulated]
        if simulated:
            out.append(f"annotators {simulated} are simulated; imported annotations are real work")
        return out + objs.unplaced + objs.geometry, more  # 4. objects: geometry against the image size

    def new_classes(objs: _Objects) -> list[str]:
        return [c for c in objs.labels if c not in class_ids] if add_classes else []

    whole = _Objects(format, annotator, sizes, records, ds.images)
    prepared = whole.check(ds.objects)
    if ds.batches is not None and (image_problems or problems):  # a streamed file: read it all to say all
        for batch in ds.batches():
            whole.check(batch)
    listed, more = verdict(whole)
    if listed:
        _fail(path, listed, fixes + more)

    def fn(conn: sa.Connection) -> ImportSummary:
        policy.require_admin(conn, "import_annotations", "import annotations")
        summary = ImportSummary()
        consents = store.subjects.register(
            conn, [records[k].subject for k in new_infos]
            + [records[k].subject for k, r in matched.items() if r.subject is None], consent="unknown",
            purpose=None)
        new_ids = store.images.insert(conn, list(new_infos.values()), split=None,
                                      subjects=[records[k].subject for k in new_infos],
                                      attributes=[records[k].attributes for k in new_infos], consents=consents)
        image_ids = {**{k: r.id for k, r in matched.items()}, **dict(zip(new_infos, new_ids))}
        summary.images_added = len(new_ids)

        def fill_in() -> None:
            """The attributes and subjects the file adds to images already in the project. After the
            objects: a streamed import's worker does it while the database stores the last batches."""
            summary.images_updated = store.images.fill_in(
                conn, list(matched.values()), attributes=[records[k].attributes for k in matched],
                subjects=[records[k].subject for k in matched], consents=consents)
        note = {"format": format, "file": str(path)}
        added: list[str] = []
        if ds.workers is not None and annotator is None:  # a streamed file's annotators, as a whole file's
            names = sorted(f"{format}:{w}" for w in ds.workers)
            summary.annotators_added = store.members.ensure(conn, [
                n for n in names if n in known_annotators or name_problem(n, "annotator name") is None])[1]

        image_of = np.array([image_ids.get(r.key, -1) if isinstance(r.key, str) else -1 for r in ds.images],
                            dtype=np.int64)  # the stored id of each of the dataset's images
        referred: dict[sa.Table, list[Any]] = {S.images: [], S.annotators: [], S.classes: []}  # ids the rows use

        def provenance(given: Sequence[dict[str, Any]]) -> list[str]:
            """Each object's provenance with the import's note, as JSON text."""
            if isinstance(given, IntFields) and (texts := given.json_with("import", note)) is not None:
                return texts
            return encode_many({**p, "import": note} for p in given)

        cids: dict[str, int] = {}  # the stored ids of classes and annotators, as batches need them
        aids: dict[str, int] = {}

        def columns_of(checked: _Checked) -> dict[str, Any]:
            """The stored columns of checked objects that need nothing from the database (all but
            ``class_id`` and ``annotator_id``): built by the caller's thread, while the database
            stores the previous batch."""
            n = len(checked)
            on = image_of[checked.at]
            referred[S.images].append(np.unique(on))
            geometry = checked.geometry
            texts = geometry.texts if isinstance(geometry, JsonTexts) else None  # written as encode_json does
            return {"image_id": on.tolist(), "kind": checked.kinds,
                    "geometry": encode_many(geometry) if texts is None else texts,
                    "score": checked.scores or [None] * n, "source": [source] * n,
                    "provenance": provenance(checked.provenance),
                    **({"state": ["proposed"] * n} if as_proposals else {})}

        def insert(classes: list[str], workers: list[str], checked: _Checked, columns: dict[str, Any]) -> None:
            """Store checked objects (their :func:`columns_of`), adding the ``classes`` and annotators
            (``workers``) the file needs.

            A streamed import's batches run in writes_behind's thread: each query there waits
            for the GIL, so the ids are looked up only when a batch names new ones.
            """
            fresh = [c for c in classes if c not in added]
            store.classes.append(conn, fresh)
            added.extend(fresh)
            if fresh or not cids:
                cids.update(store.classes.ids(conn))
            names = [annotator] if annotator else workers
            if not set(names) <= aids.keys():
                found, new_members = store.members.ensure(conn, [n for n in names if n not in aids])
                aids.update(found)
                summary.annotators_added += [n for n in new_members if n not in summary.annotators_added]
            n = len(checked)
            by = [aids[annotator]] * n if annotator else [aids[f"{format}:{w}"] for w in checked.workers or ()]
            classes_of = [cids[label] for label in checked.labels]
            referred[S.annotators].append(np.unique(by))
            referred[S.classes].append(np.unique(classes_of))
            expect(n)
            store.annotations.insert_columns(conn, {**columns, "annotator_id": by, "class_id": classes_of},
                                             encoded=("provenance", "geometry"))
            summary.annotations_added += n

        with large_write(conn), deferred_indexes(conn, S.annotations) as expect:
            if ds.batches is None:
                insert(new_classes(whole), sorted(whole.workers), prepared, columns_of(prepared))
                fill_in()
            else:  # streamed: check and insert a batch at a time; any problem rolls all of it back
                objs = whole.anew()
                # the database stores a batch while the next ones are read, checked and laid out in columns
                with writes_behind(conn, depth=WRITES_AHEAD) as submit:
                    for batch in ds.batches():  # raises the reader's FormatError after the last batch
                        prepared_batch = objs.check(batch)
                        if not (objs.refused or verdict(objs)[0]):
                            submit(partial(insert, new_classes(objs), sorted(objs.workers), prepared_batch,
                                           columns_of(prepared_batch)))
                    refused, more = verdict(objs)  # (objs.refused is a part of it)
                    if not refused:
                        submit(fill_in)
                if refused:
                    _fail(path, refused, fixes + more)
            if conn.dialect.name == "sqlite":  # its foreign keys, checked here for the whole import (see below)
                gone = {t.name: ids for t, parts in referred.items()
                        if parts and (ids := missing_ids(conn, t, np.concatenate(parts)))}
                if gone:
                    said = "; ".join(f"{t} with ids {ids[:5]}" for t, ids in gone.items())
                    raise ImportProblem(f"cannot import {path}: rows it refers to were deleted while it ran ({said}); "
                                        "the project is unchanged", fix=Fix("run the import again",
                                                                            "run the import again"))
        store.ctx.audit(conn, "import_annotations", target="annotations", format=format, file=str(path),
                        annotations=summary.annotations_added, images_added=summary.images_added,
                        as_proposals=as_proposals, annotators_added=summary.annotators_added, classes_added=added)
        return summary
    # SQLite checks foreign keys row by row (~1.4 us a row); fn checks the rows' references itself
    return store.ctx.write(fn, foreign_keys=False)
