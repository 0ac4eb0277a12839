"""Geometry of annotations: canonical forms, conversions, rasterisation and IoU.

The canonical JSON form of each annotation kind is specified in
``docs/data-model.md``; :func:`normalize_geometry` is its gatekeeper. Heavy
dependencies (pycocotools, shapely, OpenCV) are imported inside the functions
that use them, so importing this package costs only numpy.
"""
from .convert import (
    box_to_mask,
    box_to_polygon,
    ellipse_to_mask,
    ellipse_to_polygon,
    geometry_to_mask,
    mask_to_box,
    mask_to_polygon,
    polygon_to_mask,
    polygon_to_rle,
)
from .iou import box_iou, ellipse_iou, mask_iou, polygon_iou
from .rle import decode_rle, encode_rle, rle_area, rle_to_box, to_coco_rle
from .validate import KINDS, GeometryError, ellipse_half_extent, geometry_bounds, normalize_geometry

__all__ = [
    "KINDS",
    "GeometryError",
    "normalize_geometry",
    "geometry_bounds",
    "ellipse_half_extent",
    "geometry_to_mask",
    # RLE
    "encode_rle",
    "decode_rle",
    "to_coco_rle",
    "rle_area",
    "rle_to_box",
    # conversions
    "mask_to_polygon",
    "polygon_to_mask",
    "polygon_to_rle",
    "ellipse_to_mask",
    "ellipse_to_polygon",
    "box_to_mask",
    "box_to_polygon",
    "mask_to_box",
    # IoU
    "box_iou",
    "mask_iou",
    "polygon_iou",
    "ellipse_iou",
]
