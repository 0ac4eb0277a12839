"""Export of a project's annotations in other tools' formats, through ``labkit.formats``' writers.

Admins only; every export is recorded in the audit log and the project's export registry
(:mod:`labkit.services.report_registry`) so that ``forget_subject`` can withdraw it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from labkit._util.clock import utc_iso
from labkit._util.memory import no_gc
from labkit.services.export_images import (
    Pseudonyms,
    anonymized_keys,
    files_state,
    images_folder,
    inside,
    write_images,
    written,
)
from labkit.services.report_registry import register_export
from labkit.store.context import id_ranges
from labkit.store.protocol import StoredProject

__all__ = ["export"]

#: Annotations read from the store at a time by an export to a writer that streams.
EXPORT_BATCH = 50_000


def export(project: StoredProject, path: str | Path, *, format: str, kinds: list[str] | None = None,
           annotators: list[str] | None = None, include_simulated: bool = True,
           images: bool | str | Path = False, anonymize: str | None = None,
           strip_metadata: bool = False, salt: str | None = None, recipient: str | None = None,
           progress: bool = True, **options: Any) -> Path:
    """Write the project's current (not deleted) annotations in another tool's format.

    Images whose subject withdrew consent are never exported. Admins only; every
    export is recorded in the audit log (with ``recipient`` and the image ids it holds)
    for the privacy report, and in the project's export registry
    (``<project>/exports/index.jsonl``, with the files it wrote) so that
    ``forget_subject`` withdraws it when it is inside the project folder, and names
    its recipient when it is not.

    Parameters
    ----------
    path : path
        Output file or folder (per the format).
    format : str
        One of :func:`labkit.formats.list_formats` with a writer.
    kinds, annotators : list of str, optional
        Restrict what is exported.
    include_simulated : bool
        Export simulated annotators' work too (default True; it stays marked in provenance).
    images : bool or path
        Also write the image files: to this folder, or (``True``) to ``images/`` next
        to the annotation file (inside it, for folder formats).
    anonymize : {None, "faces"}
        ``"faces"``: detect faces (OpenCV's Haar cascades, frontal and profile) and
        blur them in every exported image; replace subject ids and annotator names
        by salted pseudonyms (every subject id of the project written inside image
        attributes too, as a whole value or inside text: ids of six characters or more
        anywhere, shorter ones as whole tokens), image file names by neutral ones, and
        drop provenance (which can hold paths and hashes of the originals). Implies
        ``images`` and ``strip_metadata``.
    strip_metadata : bool
        Write images from their decoded pixels only: no EXIF (GPS, camera, time), XMP,
        ICC or text chunks. Implies ``images``.
    salt : str, optional
        Pseudonym salt. Default: a new random one per export, never stored, so two
        exports cannot be linked; pass the same salt to make them linkable.
    recipient : str, optional
        Who receives the data, for the audit log (seed 003: recipients are named).
    **options
        Passed to the writer (e.g. ``task="segment"`` for YOLO).

    Examples
    --------
    ``project.export("out/coco.json", format="coco", anonymize="faces", strip_metadata=True,
    recipient="partner lab")`` writes ``out/coco.json`` and ``out/images/``, with faces
    blurred and metadata removed, and ``out/coco.json.images.json`` saying how many.
    """
    with no_gc():  # a million records: the collector would run thousands of times for nothing
        return _export(project, path, format=format, kinds=kinds, annotators=annotators,
                       include_simulated=include_simulated, images=images, anonymize=anonymize,
                       strip_metadata=strip_metadata, salt=salt, recipient=recipient, progress=progress, **options)


def _export(project: StoredProject, path: str | Path, *, format: str, kinds: list[str] | None,
            annotators: list[str] | None, include_simulated: bool, images: bool | str | Path,
            anonymize: str | None, strip_metadata: bool, salt: str | None, recipient: str | None,
            progress: bool, **options: Any) -> Path:
    from labkit.formats import Dataset, ImageRecord, ObjectRecord, get_writer
    from labkit.formats._base import writer_streams

    if anonymize not in (None, "faces"):
        raise ValueError(f"anonymize must be None or 'faces', got {anonymize!r}")
    writer = get_writer(format)
    project.store.ctx.require("export", "admin", what="export data")
    imgs = project.images()
    out = Path(path)
    anon = anonymize is not None
    keys = anonymized_keys(imgs["path"]) if anon else _image_keys(imgs["path"].map(project.store.ctx.resolve))
    everyone = (set(project.images(include_withdrawn=True)["subject"].dropna())
                | set(project.store.subjects.table().index)) if anon else set()
    names = Pseudonyms(salt, everyone) if anon else None

    def subj(s: Any) -> Any:
        return names("s", s) if names is not None else s

    def attributes(a: Any) -> dict:
        return names.attributes(a) if names is not None else dict(a or {})
    workers: dict[str, str] = {}  # one pseudonym per name, not per row
    exported_images = np.fromiter(keys, dtype=np.int64, count=len(keys))
    exported = [0]

    def records(ann: Any) -> list[ObjectRecord]:
        """A frame of ``annotations()`` as records, column by column (a row-wise loop costs 50x)."""
        keep = ann["task"].isin(exported_images)  # (an image added since the images were read is not in it)
        if kinds is not None:
            keep &= ann["kind"].isin(kinds)
        if annotators is not None:
            keep &= ann["worker"].isin(annotators)
        if not include_simulated:
            keep &= ~ann["simulated"]
        ann = ann[keep]
        for w in ann["worker"].unique().tolist():
            if w not in workers:
                workers[w] = names("a", w) if names is not None else w
        scores = ann["score"].astype(float).tolist()
        exported[0] += len(ann)
        return [ObjectRecord(image_key=keys[task], kind=kind, label=label, geometry=geometry,
                             score=None if score != score else score, worker=workers[who],
                             provenance={} if anon else dict(prov or {}), where=f"annotation {aid}")
                for aid, task, kind, label, geometry, score, who, prov in zip(
                    ann.index.tolist(), ann["task"].tolist(), ann["kind"].tolist(), ann["label"].tolist(),
                    ann["geometry"].tolist(), scores, ann["worker"].tolist(), ann["provenance"].tolist())]

    def batches(by_image: bool) -> Iterator[list[ObjectRecord]]:
        for frame in project.store.annotations.batches(rows=EXPORT_BATCH, by_image=by_image):
            yield records(frame)
    images_out = [ImageRecord(key=keys[i], width=int(w), height=int(h), attributes=attributes(a),
                              subject=subj(sub), where=f"image {i}")
                  for i, w, h, a, sub in zip(imgs.index.tolist(), imgs["width"].tolist(), imgs["height"].tolist(),
                                             imgs["attributes"].tolist(), imgs["subject"].tolist())]
    if writer_streams(writer):  # the annotations a batch at a time, store to file
        ds = Dataset(images=images_out, objects=[], classes=project.classes(),
                     batches=lambda: batches(False), image_batches=lambda: batches(True))
    else:
        ds = Dataset(images=images_out, objects=records(project.annotations()), classes=project.classes())
    stats = None
    before = files_state(out)
    wrote: list[Path] = []
    if images is not False or anon or strip_metadata:
        folder = images_folder(out, format, images)
        files = project.image_files(list(imgs.index), purpose=f"export ({format})")
        summary = out.parent / f"{out.name}.images.json"
        stats = write_images(files, keys, folder, faces=anon, strip=bool(strip_metadata or anon),
                             summary=summary, progress=progress)
        wrote += [folder / keys[i] for i in imgs.index] + [summary]
    writer(ds, out, **options)
    wrote += [out] if out.is_file() else written(out, before)
    kept_in, kept_out = inside(wrote, project.root)
    entry = register_export(project.root, {
        "path": str(out.resolve()), "format": format, "created_at": utc_iso(), "actor": project.user,
        "recipient": recipient, "anonymize": anonymize, "images": len(ds.images), "files": kept_in,
        "files_outside": kept_out})
    project.store.ctx.write(lambda conn: project.store.ctx.audit(
        conn, "export", format=format, path=str(out.resolve()), annotations=exported[0],
        images=len(ds.images), anonymize=anonymize, strip_metadata=bool(strip_metadata or anon),
        recipient=recipient, image_files=None if stats is None else stats.get("images"),
        faces_blurred=None if stats is None else stats.get("faces_blurred"), export_id=entry["id"],
        image_ids=id_ranges(list(imgs.index))))
    return out


def _image_keys(paths: Any) -> dict[int, str]:
    """File names when unique, else paths relative to the images' common folder.

    ``paths`` are absolute: a folder project stores the paths of images inside its folder
    relative to it and the others absolute, and a project may hold both.
    """
    names = {i: PurePosixPath(Path(p).as_posix()).name for i, p in paths.items()}
    if len(set(names.values())) == len(names):
        return names
    full = {i: Path(os.path.abspath(p)) for i, p in paths.items()}
    try:
        common = Path(os.path.commonpath([str(p) for p in full.values()]))
    except ValueError:  # no folder in common (Windows drives)
        return {i: p.as_posix().replace(":", "").lstrip("/") for i, p in full.items()}
    return {i: p.relative_to(common).as_posix() for i, p in full.items()}
