"""Segmentation quality against known masks: IoU of the box-only mask and after 1, 3, 5 clicks.

Run: ``.venv/bin/python -m pytest -m bench benchmarks/bench_segmentation_quality.py -s``
(about 3-5 minutes on 2 CPU cores; ``LABKIT_SAM_CHECKPOINT`` adds SAM, whose ViT-B encoder
takes 11-15 s per image here, on the first ``SAM_COMPOSITES`` composites).

The data are :func:`labkit.models.segmenters.evaluate.make_composites`: 84 objects with
exact masks (seven shapes, three contrasts, half of them standing on a support of their
own material) pasted onto real ``skimage.data`` photographs at 1024 x 768, with a box
0-6% looser than the object, from a seed the segmenter was not tuned on (``SEED``). The
protocol is that of the interactive-segmentation literature (Xu et al. 2016; Sofiiuk et
al. 2022): the box, then five corrective clicks, each at the interior point of the
largest error region (positive on missed object, negative on taken background).

Segmenters, on the same composites in one run:

- ``grabcut``: labkit's :class:`~labkit.models.segmenters.grabcut.GrabCutSegmenter`, the
  default when there is no SAM checkpoint;
- ``grabcut-plain``: the peer, OpenCV's GrabCut as labkit 0.2 ran it: the box crop at
  256 px, 5 iterations, clicks as 3-pixel seed discs, a fresh cut for every update;
- SAM (``default_segmenter()``), when ``$LABKIT_SAM_CHECKPOINT`` names a checkpoint; its
  ``set_image`` s column is the encoder (each image once: embeddings are cached in the
  run's temporary folder), the update seconds are the decoder.

Targets for ``grabcut``: median box-only IoU >= 0.85; mean IoU rises with every count of
clicks (box < 1 < 3 < 5 clicks); p95 seconds per update <= 0.5 at 1024 x 768; level with
``grabcut-plain`` after one click (within 0.01) and better after three and five.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pytest

N_COMPOSITES, SEED, SAM_COMPOSITES = 84, 2026, 21
BOX_MEDIAN, P95_S = 0.85, 0.5
W, H = 1024, 768


class PlainGrabCut:
    """labkit 0.2's GrabCut, kept as the peer: box crop, clicks as small seed discs, one cut per update."""

    name = model_id = "grabcut-plain"

    def __init__(self, *, iterations: int = 5, work_size: int = 256, margin: float = 0.1, seed_radius: int = 3):
        self.iterations, self.work_size, self.margin, self.seed_radius = iterations, work_size, margin, seed_radius
        self.image: np.ndarray | None = None

    def set_image(self, image: np.ndarray, *, key: str | None = None) -> None:
        self.image = image

    def predict(self, *, box: Any, points: Any = None, point_labels: Any = None,
                multimask: bool = True) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        image = self.image
        if image is None:
            raise RuntimeError("no image is set: call set_image(image) before predict(...)")
        Hi, Wi = image.shape[:2]
        out = np.zeros((Hi, Wi), bool)
        x0, y0, x1, y1 = np.clip(np.asarray(box, float), 0, [Wi, Hi, Wi, Hi])
        m = max(8.0, self.margin * max(x1 - x0, y1 - y0))
        cx0, cy0 = int(max(0, np.floor(x0 - m))), int(max(0, np.floor(y0 - m)))
        cx1, cy1 = int(min(Wi, np.ceil(x1 + m))), int(min(Hi, np.ceil(y1 + m)))
        crop = image[cy0:cy1, cx0:cx1]
        s = min(1.0, self.work_size / max(crop.shape[:2]))
        sw, sh = max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))
        small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA) if s < 1 else crop
        small = np.ascontiguousarray(small[..., ::-1])
        seeds = np.full((sh, sw), cv2.GC_BGD, np.uint8)
        seeds[int(np.floor((y0 - cy0) * s)):int(np.ceil((y1 - cy0) * s)),
              int(np.floor((x0 - cx0) * s)):int(np.ceil((x1 - cx0) * s))] = cv2.GC_PR_FGD
        if points is not None:
            r = max(1, round(self.seed_radius * s))
            for (px, py), lab in zip(points, point_labels):
                cv2.circle(seeds, (int((px - cx0) * s), int((py - cy0) * s)), r,
                           int(cv2.GC_FGD if lab == 1 else cv2.GC_BGD), -1)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)
        try:
            cv2.grabCut(small, seeds, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return out[None], np.ones(1, np.float32)
        fg = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.float32)
        if s < 1:
            fg = cv2.resize(fg, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
        inside = np.zeros(fg.shape, bool)
        inside[int(np.floor(y0)) - cy0:int(np.ceil(y1)) - cy0, int(np.floor(x0)) - cx0:int(np.ceil(x1)) - cx0] = True
        out[cy0:cy1, cx0:cx1] = (fg >= 0.5) & inside
        return out[None], np.ones(1, np.float32)


def _segmenters(cache_dir) -> list[tuple[str, Any, int]]:
    """(label, segmenter, how many composites it runs on)."""
    from labkit.models import default_segmenter, load_segmenter

    out: list[tuple[str, Any, int]] = [("grabcut", load_segmenter("grabcut"), N_COMPOSITES),
                                       ("grabcut-plain", PlainGrabCut(), N_COMPOSITES)]
    if os.environ.get("LABKIT_SAM_CHECKPOINT"):
        sam = default_segmenter(cache_dir=cache_dir)
        out.append((sam.name, sam, SAM_COMPOSITES))
    return out


def _click_effects(table) -> tuple[int, int, int]:
    """Clicks that made the mask worse, clicks that changed nothing on a poor mask, clicks made."""
    ious = table.filter(regex="^iou_").to_numpy()
    step = np.diff(ious, axis=1)
    made = np.isfinite(table.filter(regex=r"^s_[1-9]").to_numpy())
    noop = made & (np.abs(step) < 0.002) & (ious[:, :-1] < 0.95)
    return int((made & (step < -0.01)).sum()), int(noop.sum()), int(made.sum())


@pytest.mark.bench
def test_segmentation_quality(tmp_path):
    from labkit.models.segmenters.evaluate import click_protocol, make_composites, summarize_protocol

    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    composites = make_composites(N_COMPOSITES, seed=SEED, height=H, width=W)
    make_s = time.perf_counter() - t
    tables, summaries = {}, {}
    for label, seg, n in _segmenters(tmp_path / "cache"):
        tables[label] = click_protocol(seg, composites[:n], clicks=5)
        summaries[label] = summarize_protocol(tables[label])

    lines = [f"{N_COMPOSITES} composites {W}x{H} (seed {SEED}, made in {make_s:.0f} s); {os.cpu_count()} cores, "
             f"load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f}",
             "",
             f"{'segmenter':<14} {'n':>3} {'box med':>8} {'box mean':>8} {'1 click':>8} {'3 clicks':>8} "
             f"{'5 clicks':>8} {'NoC@90':>7} {'worse':>6} {'no-op':>6} {'s p50':>6} {'s p95':>6} {'set_image s':>11}"]
    for label, s in summaries.items():
        worse, noop, made = _click_effects(tables[label])
        lines.append(f"{label:<14} {int(s['n']):>3} {s['box_median']:>8.3f} {s['box_mean']:>8.3f} "
                     f"{s['clicks_1']:>8.3f} {s['clicks_3']:>8.3f} {s['clicks_5']:>8.3f} {s['noc90']:>7.2f} "
                     f"{worse:>6} {noop:>6} {s['s_p50']:>6.3f} {s['s_p95']:>6.3f} {s['set_image_s']:>11.3f}")
    lines.append(f"(worse: clicks that lowered IoU by more than 0.01; no-op: clicks on a mask under 0.95 IoU that "
                 f"changed it by less than 0.002; of {made} clicks each)")
    for by in ("shape", "contrast", "support"):
        groups = [str(c.meta[by]) for c in composites]
        lines += ["", f"mean IoU by {by}: box only -> 5 clicks"]
        for label, table in tables.items():
            g = table[["iou_0", "iou_5"]].groupby(groups[:len(table)]).mean()
            lines.append(f"  {label:<14} " + "  ".join(f"{k} {r.iou_0:.2f}->{r.iou_5:.2f}" for k, r in g.iterrows()))
    print("\n" + "\n".join(lines))

    ours, peer = summaries["grabcut"], summaries["grabcut-plain"]
    assert ours["box_median"] >= BOX_MEDIAN, f"median box-only IoU {ours['box_median']:.3f} < {BOX_MEDIAN}"
    means = [ours["box_mean"], ours["clicks_1"], ours["clicks_3"], ours["clicks_5"]]
    assert means == sorted(means) and len(set(means)) == 4, f"mean IoU box, 1, 3, 5 clicks: {means}"
    assert ours["s_p95"] <= P95_S, f"p95 {ours['s_p95']:.3f} s per update > {P95_S} s"
    # one click: level with the peer (measured 0.905 vs 0.904); three and five: ahead of it
    assert ours["clicks_1"] >= peer["clicks_1"] - 0.01, (ours["clicks_1"], peer["clicks_1"])
    for k in ("clicks_3", "clicks_5"):
        assert ours[k] > peer[k], f"{k}: grabcut {ours[k]:.3f} <= plain GrabCut {peer[k]:.3f}"
