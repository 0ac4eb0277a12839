"""Image files of an export: copied, stripped of metadata, or anonymised (faces blurred).

Also what an anonymised export needs besides pixels (:class:`Pseudonyms`, neutral file
names) and the list of files an export wrote (:func:`files_state`, :func:`written`,
:func:`inside`), which the export registry keeps so that erasure can withdraw it.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from labkit._util.hashing import sha256_file
from labkit.privacy.pseudonyms import IdMatcher
from labkit.store.errors import ImageError
from labkit.store.files import load_rgb

FOLDER_FORMATS = ("yolo", "aihub")


class Pseudonyms:
    """Salted pseudonyms (HMAC-SHA256) for one export: ``names("s", subject)``.

    ``subjects`` are the ids to find inside free text as well (:meth:`text`): every
    subject of the project, so a note naming another person is caught too.
    """

    def __init__(self, salt: str | None, subjects: Iterable[str] = ()):
        from labkit.privacy import new_salt

        self.salt = salt or new_salt()
        self._ids = IdMatcher(subjects)

    def __call__(self, prefix: str, value: Any) -> Any:
        from labkit.privacy import pseudonym

        if value is None or value != value:  # None or NaN
            return None
        return pseudonym(str(value), self.salt, prefix=prefix + "_")

    def text(self, value: Any) -> Any:
        """``value`` (a string, or nested dicts/lists) with every subject id in it pseudonymised.

        Found as :class:`~labkit.privacy.pseudonyms.IdMatcher` finds them: ignoring case;
        ids of six characters or more anywhere, shorter ones as whole tokens
        (``"subject 017, 2017"`` becomes ``"subject s_…, 2017"``).
        """
        return self._ids.replace(value, lambda s: self("s", s))

    def attributes(self, attributes: dict | None) -> dict:
        """Attributes with every subject id pseudonymised: a value that is one (``metaid``, an
        owner...), and one written inside text (``"note": "subject SUBJ-7781 left eye"``), keys too."""
        return dict(self.text(dict(attributes or {})))


def anonymized_keys(paths: pd.Series) -> dict[int, str]:
    """Neutral file names (``image_000001.png``): original names can identify people."""
    return {i: f"image_{n:06d}{PurePosixPath(p).suffix.lower() or '.png'}"
            for n, (i, p) in enumerate(paths.items(), start=1)}


def files_state(path: Path) -> dict[Path, tuple[int, int]]:
    """Size and modification time of ``path``, or of every file under it if it is a folder."""
    if path.is_file():
        st = path.stat()
        return {path: (st.st_size, st.st_mtime_ns)}
    out = {}
    for f in path.rglob("*") if path.is_dir() else ():
        if f.is_file():
            st = f.stat()
            out[f] = (st.st_size, st.st_mtime_ns)
    return out


def written(path: Path, before: dict[Path, tuple[int, int]]) -> list[Path]:
    """The files at or under ``path`` that are new or changed since ``before`` (:func:`files_state`)."""
    return [f for f, state in files_state(path).items() if before.get(f) != state]


def inside(paths: Iterable[Path], root: Path) -> tuple[list[str], int]:
    """The distinct ``paths`` inside ``root`` (relative, POSIX, sorted) and how many are outside it."""
    base = root.resolve()
    rel, outside = set(), set()
    for p in paths:
        full = Path(p).resolve()
        try:
            rel.add(full.relative_to(base).as_posix())
        except ValueError:
            outside.add(full)
    return sorted(rel), len(outside)


def images_folder(out: Path, format: str, images: bool | str | Path) -> Path:
    if not isinstance(images, bool):
        return Path(images)
    return out / "images" if format in FOLDER_FORMATS or out.suffix == "" else out.parent / "images"


def write_images(files: pd.DataFrame, keys: dict[int, str], folder: Path, *, faces: bool,
                 strip: bool = True, summary: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Write each image as ``folder/keys[id]``; verify hashes first; return counts (also to ``summary``).

    ``files`` is what ``project.image_files`` returns (``path``, ``sha256`` by image id).

    With ``faces``, faces are detected and blurred; with ``strip`` (or ``faces``) the file
    is re-encoded from its pixels, so no metadata survives. A file that changed since
    import stops the export before anything is written.
    """
    from labkit._util.progress import progress_bar
    from labkit.privacy import anonymize_image, read_metadata, save_clean

    paths = dict(files["path"].items())
    bad = [f"  image {i}: {p} is missing" if not p.exists() else f"  image {i}: {p} changed since import"
           for i, p in paths.items() if not p.exists() or sha256_file(p) != files.at[i, "sha256"]]
    if bad:
        raise ImageError("cannot export images that are missing or changed (run `labkit verify`); nothing was "
                         "written:\n" + "\n".join(bad[:30]))
    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> tuple[int, int]:
        src, dst = paths[i], folder / keys[i]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not faces and not strip:
            shutil.copyfile(src, dst)
            return 0, 0
        removed = int(any(read_metadata(src).values()))
        image = load_rgb(src)
        boxes = []
        if faces:
            image, boxes = anonymize_image(image)
        save_clean(image, dst)
        return len(boxes), removed

    with ThreadPoolExecutor(max_workers=2) as pool:  # OpenCV and Pillow release the GIL
        results = list(progress_bar(pool.map(one, list(paths)), total=len(paths), desc="exporting images", unit="img",
                            disable=not progress or len(paths) < 20))
    stats = {"images": len(paths), "faces_blurred": int(sum(r[0] for r in results)),
             "images_with_faces": int(sum(r[0] > 0 for r in results)),
             "images_with_metadata_removed": int(sum(r[1] for r in results)),
             "faces": bool(faces), "metadata_stripped": bool(faces or strip),
             "detector": "OpenCV Haar cascades (frontal + profile)" if faces else None}
    if summary is not None:
        summary.write_text(json.dumps(stats, indent=2))
    return stats
