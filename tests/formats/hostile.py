"""A valid annotation file of every format, and a workspace to import it into, for the hostile-file tests.

``workspace(tmp)`` lays out what an attacker's file would like to reach::

    tmp/imgs/img_0.png ... img_4.png     the project's images (40x30)
    tmp/new/new_0.png                    an image the file may add (``images_dir=tmp/new``)
    tmp/secret/secret.png                outside every folder an import is given

``write_base(fmt, folder)`` writes a valid file of ``fmt`` (a JSON/XML file, or a folder for
``aihub`` and ``yolo``) naming ``img_0.png``, ``img_1.png`` and (but YOLO, which takes its
sizes from the project) ``new_0.png``, with classes ``cat`` and ``dog``; it imports cleanly.
``base_doc(fmt)`` is the same content as Python data, for tests that change one thing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from labkit.formats import _ls_brush
from labkit.geometry import encode_rle

W, H = 40, 30
FORMATS = ("coco", "cvat", "labelstudio", "aihub", "yolo")


@dataclass
class Workspace:
    root: Path
    images: list[Path]
    new: Path       # images_dir of an import
    secret: Path    # a file no import may read

    @property
    def secret_dir(self) -> Path:
        return self.secret.parent


def workspace(tmp: Path) -> Workspace:
    def png(path: Path, seed: int) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)
        return path

    images = [png(tmp / "imgs" / f"img_{i}.png", i) for i in range(5)]
    png(tmp / "new" / "new_0.png", 10)
    secret = png(tmp / "secret" / "secret.png", 99)
    return Workspace(tmp, images, tmp / "new", secret)


def _mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[5:15, 5:20] = True
    return m


def base_doc(fmt: str):
    """The content of the valid base file: a dict/list for JSON formats, ``{file: text}`` for the others."""
    if fmt == "coco":
        return {
            "images": [{"id": 1, "file_name": "img_0.png", "width": W, "height": H},
                       {"id": 2, "file_name": "new_0.png", "width": W, "height": H, "license": 1}],
            "categories": [{"id": 1, "name": "cat", "supercategory": "animal"}, {"id": 2, "name": "dog"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 8], "area": 80, "iscrowd": 0},
                {"id": 2, "image_id": 2, "category_id": 2, "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]],
                 "bbox": [2, 2, 18, 18], "area": 324, "iscrowd": 0},
                {"id": 3, "image_id": 1, "category_id": 1, "segmentation": encode_rle(_mask()), "iscrowd": 1,
                 "bbox": [5, 5, 15, 10], "area": 150},
                {"id": 4, "image_id": 2, "category_id": 1, "keypoints": [5, 5, 2], "num_keypoints": 1,
                 "score": 0.5},
            ]}
    if fmt == "labelstudio":
        def region(typ, value, rid):
            return {"id": rid, "type": typ, "from_name": "label", "to_name": "image", "original_width": W,
                    "original_height": H, "image_rotation": 0, "value": value}
        return [
            {"id": 1, "data": {"image": "/data/upload/1/0a1b2c3d-img_0.png"}, "annotations": [
                {"id": 11, "completed_by": 1, "result": [
                    region("rectanglelabels", {"x": 10, "y": 10, "width": 25, "height": 20, "rotation": 0,
                                               "rectanglelabels": ["cat"]}, "r1"),
                    region("polygonlabels", {"points": [[5, 5], [50, 5], [50, 50]], "polygonlabels": ["dog"]},
                           "r2"),
                    region("ellipselabels", {"x": 50, "y": 50, "radiusX": 10, "radiusY": 5, "rotation": 0,
                                             "ellipselabels": ["cat"]}, "r3"),
                    {"id": "c1", "type": "choices", "from_name": "c", "to_name": "image",
                     "value": {"choices": ["dog"]}}]}],
             "predictions": [{"id": 5, "model_version": "m1", "score": 0.9, "result": [
                 region("keypointlabels", {"x": 20, "y": 20, "width": 1, "keypointlabels": ["cat"]}, "p1")]}]},
            {"id": 2, "data": {"image": "/data/local-files/?d=new/new_0.png"}, "annotations": [
                {"id": 12, "completed_by": {"id": 2, "email": "ben@lab"}, "result": [
                    region("brushlabels", {"format": "rle", "rle": _ls_brush.encode(_mask()),
                                           "brushlabels": ["dog"]}, "b1")]}]},
        ]
    if fmt == "aihub":
        def record(name, metaid, anns):
            return {"Annotations": {"name": name, "inst": "S", "image": "rgb", "condition": "F", "posture": "D",
                                    "metaid": metaid, "annotations": anns,
                                    "pose": {"head": [1.5, 2.5, 3.5]}, "distance": {"cam": 53}}}
        return {
            "a.json": record("img_0.png", "001", [
                {"label": "cat", "shape": "Ellipse", "cx": 20, "cy": 15, "rx": 5, "ry": 4, "rotate": 0,
                 "points": [[15, 11], [25, 19]]},
                {"label": "dog", "shape": "Polygon", "points": [[2, 2], [20, 2], [20, 20]]}]),
            "b.json": record("new_0.png", 2, [{"label": "cat", "shape": "Point", "points": [[5, 6]]}]),
        }
    if fmt == "cvat":
        return {"annotations.xml": f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><labels>
    <label><name>cat</name></label>
    <label><name>dog</name></label>
  </labels></task></meta>
  <image id="0" name="img_0.png" width="{W}" height="{H}">
    <box label="cat" source="manual" occluded="0" xtl="1" ytl="2" xbr="11" ybr="10" z_order="0">
      <attribute name="visible">true</attribute>
    </box>
    <polygon label="dog" occluded="0" points="2,2;20,2;20,20" group_id="1" />
    <polygon label="dog" occluded="0" points="25,2;30,2;30,8" group_id="1" />
    <points label="cat" points="5,5;6,6" />
    <ellipse label="cat" cx="20" cy="15" rx="5" ry="4" rotation="10" />
    <mask label="dog" rle="3, 4, 5, 4" left="2" top="3" width="4" height="4" />
    <tag label="cat" source="manual" />
  </image>
  <image id="1" name="new_0.png" width="{W}" height="{H}">
    <box label="dog" xtl="10" ytl="10" xbr="20" ybr="16" rotation="30" />
  </image>
</annotations>
"""}
    if fmt == "yolo":
        return {"data.yaml": "nc: 2\nnames:\n  0: cat\n  1: dog\n",
                "labels/img_0.txt": "0 0.5 0.5 0.25 0.25\n1 0.1 0.1 0.5 0.1 0.5 0.5\n",
                "labels/img_1.txt": "1 0.2 0.2 0.1 0.1 0.9\n"}
    raise ValueError(fmt)


def write_doc(fmt: str, doc, folder: Path) -> Path:
    """Write ``doc`` (as :func:`base_doc` returns it, perhaps changed) under ``folder``; return what to import."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt in ("coco", "labelstudio"):
        path = folder / f"{fmt}.json"
        if isinstance(doc, bytes):
            path.write_bytes(doc)
        else:
            path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
        return path
    files = {name: json.dumps(v) if fmt == "aihub" and not isinstance(v, (str, bytes)) else v
             for name, v in doc.items()}
    for name, content in files.items():
        f = folder / name
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            f.write_bytes(content)
        else:
            f.write_text(content, encoding="utf-8")
    return folder / "annotations.xml" if fmt == "cvat" else folder


def write_base(fmt: str, folder: Path) -> Path:
    return write_doc(fmt, base_doc(fmt), folder)
