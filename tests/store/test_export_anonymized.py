"""Project.export(..., anonymize="faces", strip_metadata=True) on a real photograph of a person."""
from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from labkit import Project
from labkit.geometry import box_iou
from labkit.privacy import detect_faces, read_metadata

FACE = np.array([[170, 60, 280, 170]], float)  # the astronaut's face


@pytest.fixture
def photos(location, tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x8825] = {1: "N", 2: (37.0, 33.0, 59.0), 3: "E", 4: (126.0, 58.0, 41.0)}  # GPS, by Pillow
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(src / "eileen_collins_sts93.jpg", exif=exif, quality=95)
    Image.fromarray(skimage.data.coffee()).save(src / "coffee.png")
    Image.fromarray(skimage.data.chelsea()).save(src / "cat_of_jane_doe.png")
    p = Project.create(location, classes=["person", "cup", "cat"], workdir=tmp_path / "work")
    p.add_annotator("ana")
    p.add_images(sorted(src.iterdir()), subject=["jane-doe-1984", "nobody-0000", "eileen-collins-1956"],
                 attributes=[{}, {"owner": "jane-doe-1984"}, {"metaid": "eileen-collins-1956"}], consent="given")
    # sorted: cat_of_jane_doe (1), coffee (2), eileen (3)
    p.add_annotation(image=3, kind="box", label="person", annotator="ana", geometry=[150, 40, 300, 500],
                     provenance={"source_file": "/home/ana/eileen_collins_sts93.jpg"})
    p.add_annotation(image=1, kind="box", label="cat", annotator="ana", geometry=[100, 50, 400, 300])
    yield p, src
    p.close()


def test_anonymized_export(photos, tmp_path):
    p, src = photos
    assert read_metadata(src / "eileen_collins_sts93.jpg")["gps"]
    assert box_iou(detect_faces(np.asarray(Image.open(src / "eileen_collins_sts93.jpg"))).astype(float),
                   FACE).max() > 0.6  # the detector finds the face before export

    out = p.export(tmp_path / "share" / "coco.json", format="coco", anonymize="faces", strip_metadata=True,
                   recipient="partner lab", progress=False)

    coco = json.loads(out.read_text())
    files = {im["file_name"]: im for im in coco["images"]}
    assert sorted(files) == ["image_000001.png", "image_000002.png", "image_000003.jpg"]
    exported = np.asarray(Image.open(tmp_path / "share" / "images" / "image_000003.jpg"))
    for neighbors in (5, 3):
        found = detect_faces(exported, min_neighbors=neighbors)
        assert not len(found) or box_iou(found.astype(float), FACE).max() < 0.1
    for name in files:
        meta = read_metadata(tmp_path / "share" / "images" / name)
        assert meta == {"exif_tags": 0, "gps": False, "xmp": False, "icc": False, "text": []}, name
    text = "".join(f.read_text() for f in (tmp_path / "share").glob("*.json"))
    for secret in ("jane-doe-1984", "eileen-collins-1956", "eileen_collins", "jane_doe", "/home/ana", "ana\""):
        assert secret not in text, secret
    stats = json.loads((tmp_path / "share" / "coco.json.images.json").read_text())
    assert stats["faces_blurred"] >= 1 and stats["images_with_metadata_removed"] == 1
    # a cup and a cat are exported unchanged in pixels (PNG, no face)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "share" / "images" / "image_000002.png")),
                          skimage.data.coffee())
    entry = p.audit_log().query("action == 'export'").iloc[-1]["details"]
    assert entry["recipient"] == "partner lab" and entry["anonymize"] == "faces" and entry["faces_blurred"] >= 1


def test_pseudonyms_are_consistent_within_and_unlinkable_across_exports(photos, tmp_path):
    from labkit.formats import get_reader

    p, _ = photos
    a = get_reader("aihub")(p.export(tmp_path / "a", format="aihub", anonymize="faces", progress=False))
    b = get_reader("aihub")(p.export(tmp_path / "b", format="aihub", anonymize="faces", progress=False))
    subj_a = {im.key: im.subject for im in a.images}
    assert len(set(subj_a.values())) == 3 and all(s.startswith("s_") for s in subj_a.values())
    eileen = subj_a["image_000003.jpg"]
    attrs = {im.key: im.attributes for im in a.images}
    assert attrs["image_000003.jpg"].get("metaid", eileen) == eileen  # an attribute holding the id is replaced
    assert eileen not in {im.subject for im in b.images}  # a new salt per export
    shared = "shared-between-exports"
    c = get_reader("aihub")(p.export(tmp_path / "c", format="aihub", anonymize="faces", salt=shared,
                                     progress=False))
    d = get_reader("aihub")(p.export(tmp_path / "d", format="aihub", anonymize="faces", salt=shared,
                                     progress=False))
    assert [im.subject for im in c.images] == [im.subject for im in d.images]


def test_plain_image_export_copies_bytes_and_withdrawn_are_left_out(photos, tmp_path):
    p, src = photos
    p.withdraw_consent("jane-doe-1984", by=p.user)
    out = p.export(tmp_path / "plain" / "coco.json", format="coco", images=True, progress=False)
    names = sorted(f.name for f in (out.parent / "images").iterdir())
    assert names == ["coffee.png", "eileen_collins_sts93.jpg"]
    assert (out.parent / "images" / "coffee.png").read_bytes() == (src / "coffee.png").read_bytes()


def test_changed_file_stops_the_export(photos, tmp_path):
    p, src = photos
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(src / "coffee.png")
    with pytest.raises(Exception, match="changed since import"):
        p.export(tmp_path / "x" / "coco.json", format="coco", anonymize="faces", progress=False)
    assert not (tmp_path / "x").exists()


def test_subject_ids_inside_free_text_are_pseudonymised(location, tmp_path):
    """An id written in a note (any case, nested, in a file name) gets the pseudonym its subject gets."""
    import re

    from labkit.formats import get_reader
    from tests.conftest import write_image

    files = [write_image(tmp_path / "src" / f"img_{i}.png", seed=i) for i in range(3)]
    p = Project.create(location, classes=["eye"], workdir=tmp_path / "work")
    p.add_annotator("ana")
    p.add_images(files, subject=["SUBJ-7781", "017", "other-42"], consent="given", attributes=[
        {"note": "subject SUBJ-7781 left eye", "review": {"tags": ["seen with subj-7781", "lot 2017", "017b"]}},
        {"file": "NIA_EYE_017_rgb.png", "note": "metaid 017번; frame 0170"},
        {"note": "compare with SUBJ-7781 and 017", "SUBJ-7781": "a key naming someone"}])
    for img in (1, 2, 3):
        p.add_annotation(image=img, kind="box", label="eye", annotator="ana", geometry=[1, 1, 9, 9],
                         provenance={"note": "subject SUBJ-7781 left eye, 017"})

    out = p.export(tmp_path / "share", format="aihub", anonymize="faces", progress=False)

    text = "".join(f.read_text(encoding="utf-8") for f in out.rglob("*.json"))
    assert "subj-7781" not in text.lower()
    assert not re.search(r"(?<![A-Za-z0-9])017(?![A-Za-z0-9])", text), "the short id as a token"
    for unrelated in ("2017", "017b", "0170"):  # never inside another word or number
        assert unrelated in text
    ds = get_reader("aihub")(out)
    subject = {im.key: im.subject for im in ds.images}  # metaid: the subject's pseudonym
    a, b, c = (ds.images[k].attributes for k in range(3))
    s1, s2 = subject["image_000001.png"], subject["image_000002.png"]
    assert a["note"] == f"subject {s1} left eye" and a["review"]["tags"] == [f"seen with {s1}", "lot 2017", "017b"]
    assert b["file"] == f"NIA_EYE_{s2}_rgb.png" and b["note"] == f"metaid {s2}번; frame 0170"
    assert c["note"] == f"compare with {s1} and {s2}" and c[s1] == "a key naming someone"
    p.close()
