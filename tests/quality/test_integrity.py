"""Integrity rules: each with a planted defect and a clean case; the perceptual hash against Pillow."""
import numpy as np
import pandas as pd
import PIL
import pytest
from PIL import Image
from scipy.fft import dctn

from labkit._util.hashing import sha256_file
from labkit.geometry import encode_rle
from labkit.quality import integrity as I
from labkit.quality._resample import box_resize
from labkit.store.files import inspect_files

SIZES = pd.DataFrame({"width": [40], "height": [30]}, index=[1])


def _ann(kind, geometry, **extra):
    row = {"task": 1, "worker": "ana", "label": "cat", "kind": kind, "geometry": geometry, **extra}
    return pd.DataFrame([row], index=[7])


def _rules(findings):
    return sorted(findings["rule"])


def _img(path, seed=0, size=(32, 32)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------------- files --
@pytest.fixture
def files(tmp_path):
    paths = [_img(tmp_path / f"{i}.png", seed=i) for i in range(4)]
    table = pd.DataFrame({"path": [str(p) for p in paths], "sha256": [sha256_file(p) for p in paths]},
                         index=[1, 2, 3, 4])
    return table, paths


def test_clean_files_have_no_findings(files):
    table, _ = files
    report = inspect_files(table)
    assert (report["status"] == "ok").all() and report["phash"].notna().all()
    assert I.file_findings(report).empty


def test_missing_file(files):
    table, paths = files
    paths[0].unlink()
    f = I.file_findings(inspect_files(table))
    assert _rules(f) == ["missing_file"] and f["image"].tolist() == [1] and str(paths[0]) in f["detail"][0]


def test_unreadable_file(files):
    table, paths = files
    paths[1].write_bytes(paths[1].read_bytes()[:60])
    f = I.file_findings(inspect_files(table))
    assert _rules(f) == ["unreadable_file"] and f["image"].tolist() == [2]


def test_hash_changed(files):
    table, paths = files
    a = np.asarray(Image.open(paths[2])).copy()
    a[0, 0] ^= 1
    Image.fromarray(a).save(paths[2])
    f = I.file_findings(inspect_files(table))
    assert _rules(f) == ["hash_changed"] and f["image"].tolist() == [3] and f["dimension"][0] == "completeness"


# -------------------------------------------------------------- duplicates --
def test_perceptual_hash_is_robust_to_small_changes():
    rng = np.random.default_rng(1)
    base = np.asarray(Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).resize((64, 64)))
    brighter = np.clip(base.astype(int) + 12, 0, 255).astype(np.uint8)
    other = np.asarray(Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).resize((64, 64)))
    for method in ("phash", "dhash"):
        h = [I.perceptual_hash(x, method=method) for x in (base, brighter, other)]
        assert bin(h[0] ^ h[1]).count("1") <= 4 < bin(h[0] ^ h[2]).count("1")
    with pytest.raises(ValueError, match="method='ahash'"):
        I.perceptual_hash(base, method="ahash")


# ------------------------------------------------ box resampling and hashes vs Pillow --
# labkit re-implements Pillow's BOX resize in numpy (labkit.quality._resample); Pillow is the
# reference. Pillow 13 runs the vertical pass first when the height shrinks much more than
# the width (python-pillow/Pillow#9549); labkit follows 13, so bit-for-bit checks need it.
PILLOW_13 = int(PIL.__version__.split(".")[0]) >= 13
bit_exact = pytest.mark.skipif(not PILLOW_13, reason="labkit reproduces Pillow 13's pass order")

RESIZES = [((8, 8), (32, 32)), ((300, 200), (32, 32)), ((200, 300), (32, 32)), ((9, 8), (32, 32)),
           ((9, 8), (8, 9)), ((64, 64), (8, 9)), ((31, 33), (32, 32)), ((1, 1), (32, 32)), ((1, 57), (8, 9)),
           ((700, 5), (32, 32)), ((1000, 30), (8, 9)), ((5, 700), (32, 32)), ((17, 32), (32, 32)),
           ((32, 32), (32, 32)), ((480, 640), (8, 9)), ((33, 1), (32, 32)), ((100, 40), (80, 120))]


def _pillow_box(a, h, w):
    return np.asarray(Image.fromarray(np.asarray(a, dtype=np.float32)).resize((w, h), Image.BOX))


def _test_images(rng, shape, n):
    """Noise at several scales, smooth ramps and flat patches: float images of ``shape``."""
    out = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            a = rng.random(shape) * 255
        elif kind == 1:
            a = rng.standard_normal(shape) * 1e4
        elif kind == 2:
            yy, xx = np.mgrid[:shape[0], :shape[1]]
            a = np.sin(xx / rng.uniform(1, 20)) * 100 + yy * rng.uniform(-3, 3)
        else:
            a = np.repeat(rng.integers(0, 256, (shape[0], 1)), shape[1], axis=1).astype(float)
            a[rng.random(shape) < 0.1] = rng.uniform(0, 255)
        out.append(a)
    return out


def _close(got, ref):
    return np.allclose(got, ref, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("src,dst", RESIZES, ids=[f"{a[0]}x{a[1]}-{b[0]}x{b[1]}" for a, b in RESIZES])
def test_box_resize_matches_pillow(src, dst):
    rng = np.random.default_rng(sum(src) * 1000 + sum(dst))
    for a in _test_images(rng, src, 12):
        got, ref = box_resize(a, *dst), _pillow_box(a, *dst)
        assert got.shape == ref.shape == dst and got.dtype == np.float32
        assert _close(got, ref)
        if PILLOW_13:
            np.testing.assert_array_equal(got, ref)


def test_box_resize_matches_pillow_on_random_sizes():
    rng = np.random.default_rng(7)
    exact = 0
    for _ in range(300):
        src = tuple(int(v) for v in rng.integers(1, 260, 2))
        dst = tuple(int(v) for v in rng.integers(1, 48, 2))
        (a,) = _test_images(rng, src, 1)
        got, ref = box_resize(a, *dst), _pillow_box(a, *dst)
        assert _close(got, ref), (src, dst)
        exact += np.array_equal(got, ref)
    assert exact == 300 or not PILLOW_13


def test_the_pillow_comparison_catches_a_wrong_resize():
    """Near misses (another filter, another pass order, a float64 intermediate) fail the checks above."""
    def bilinear(a, h, w):
        return np.asarray(Image.fromarray(np.asarray(a, np.float32)).resize((w, h), Image.BILINEAR))

    def horizontal_first(a, h, w):  # Pillow < 13's order: two one-pass resizes
        return box_resize(box_resize(a, a.shape[0], w), h, w)

    def float64_between_passes(a, h, w):
        def weights(n_in, n_out):
            eye = np.eye(n_in, dtype=np.float32)
            return np.stack([box_resize(row[None, :], 1, n_out)[0] for row in eye]).astype(np.float64)
        return (weights(a.shape[0], h).T @ np.asarray(a, np.float32).astype(np.float64)
                @ weights(a.shape[1], w)).astype(np.float32)

    rng = np.random.default_rng(3)
    cases = [(a, dst) for src, dst in RESIZES if src != dst for a in _test_images(rng, src, 4)]
    assert not all(_close(bilinear(a, *dst), _pillow_box(a, *dst)) for a, dst in cases)
    if PILLOW_13:
        for wrong in (horizontal_first, float64_between_passes):
            assert not all(np.array_equal(wrong(a, *dst), _pillow_box(a, *dst)) for a, dst in cases), wrong


def _reference_hash(image, method):
    """labkit's hash as it was computed with Pillow before the numpy resize."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114]) if a.shape[2] >= 3 else a[..., 0]
    im = Image.fromarray(a.astype(np.float32))
    if method == "phash":
        low = dctn(np.asarray(im.resize((32, 32), Image.BOX), dtype=np.float64), type=2, norm="ortho")[:8, :8]
        bits = low > np.median(low.ravel()[1:])
    else:
        small = np.asarray(im.resize((9, 8), Image.BOX), dtype=np.float64)
        bits = small[:, 1:] > small[:, :-1]
    return int(np.packbits(bits.astype(np.uint8).ravel()).view(">u8")[0])


def _hash_images():
    rng = np.random.default_rng(11)
    images = []
    for k in range(200):
        h, w = (int(v) for v in rng.integers(1, 400, 2))
        if k % 5 == 0:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif k % 5 == 1:
            img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif k % 5 == 2:  # smooth: many near-equal coefficients, where rounding decides bits
            yy, xx = np.mgrid[:h, :w]
            img = (np.sin(xx / 7.0) + np.cos(yy / 5.0)) * 60 + 128
        elif k % 5 == 3:  # flat with a few dots
            img = np.full((h, w, 3), rng.integers(0, 256), dtype=np.uint8)
            img[rng.random((h, w)) < 0.01] = 255
        else:
            img = rng.random((h, w, 4)) * 255  # RGBA float: alpha ignored
        images.append(img)
    return images


@bit_exact
@pytest.mark.parametrize("method", ["phash", "dhash"])
def test_perceptual_hash_equals_the_pillow_reference(method):
    images = _hash_images()
    assert [I.perceptual_hash(x, method=method) for x in images] == \
        [_reference_hash(x, method) for x in images]


@bit_exact
def test_perceptual_hash_equals_the_pillow_reference_on_photographs():
    data = pytest.importorskip("skimage.data")
    names = ["astronaut", "camera", "coffee", "chelsea", "coins", "moon", "page", "text", "brick", "grass",
             "gravel", "horse", "rocket", "retina", "hubble_deep_field", "logo", "microaneurysms",
             "shepp_logan_phantom", "immunohistochemistry", "clock", "checkerboard", "colorwheel"]
    for name in names:
        img = getattr(data, name)()
        for x in (img, img[::-1], img[:, : max(1, img.shape[1] // 3)], img[: max(1, img.shape[0] // 5)]):
            for method in ("phash", "dhash"):
                assert I.perceptual_hash(x, method=method) == _reference_hash(x, method), (name, x.shape, method)


def test_the_hash_comparison_catches_a_wrong_resize(monkeypatch):
    def bilinear(a, h, w):
        return np.asarray(Image.fromarray(np.asarray(a, np.float32)).resize((w, h), Image.BILINEAR))

    monkeypatch.setattr(I, "box_resize", bilinear)
    images = _hash_images()[:40]
    for method in ("phash", "dhash"):
        assert [I.perceptual_hash(x, method=method) for x in images] != \
            [_reference_hash(x, method) for x in images]


def test_box_resize_rejects_bad_input():
    with pytest.raises(ValueError, match=r"image has shape \(2, 2, 3\); expected a non-empty 2-D"):
        box_resize(np.zeros((2, 2, 3)), 4, 4)
    with pytest.raises(ValueError, match="width=0; expected an integer >= 1"):
        box_resize(np.zeros((2, 2)), 4, 0)


def test_duplicates_with_conflicting_labels():
    hashes = pd.Series([0b1111, 0b1110, 1 << 40, 0b1111], index=[1, 2, 3, 4])
    pairs = I.find_duplicates(hashes, max_distance=1, sha256=pd.Series(["a", "b", "c", "a"], index=[1, 2, 3, 4]))
    assert pairs[["image_a", "image_b"]].values.tolist() == [[1, 2], [1, 4], [2, 4]]
    assert pairs.set_index(["image_a", "image_b"]).loc[(1, 4), "exact"]
    f = I.duplicate_findings(pairs, {1: "cat", 2: "cat", 4: "dog"})
    conflict = f[f["rule"] == "duplicate_label_conflict"]
    assert sorted(zip(conflict["image"], conflict["related"])) == [(1, 4), (2, 4)]
    assert f[f["rule"] == "duplicate_image"][["image", "related"]].values.tolist() == [[1, 2]]
    assert "'cat' and 'dog'" in conflict["detail"].iloc[0]


def test_large_collections_keep_equal_hashes_only():
    hashes = pd.Series([0b1111, 0b1110, 0b1111], index=[1, 2, 3])
    pairs = I.find_duplicates(hashes, max_distance=1, exhaustive_limit=2)
    assert pairs[["image_a", "image_b", "distance"]].values.tolist() == [[1, 3, 0]]


def test_no_duplicates_among_distinct_images():
    rng = np.random.default_rng(2)
    hashes = pd.Series([I.perceptual_hash(rng.integers(0, 255, (32, 32, 3))) for _ in range(20)])
    assert I.find_duplicates(hashes).empty
    assert I.duplicate_findings(I.find_duplicates(hashes)).empty


def test_duplicate_set_labels_compare_as_sets():
    pairs = pd.DataFrame({"image_a": [1], "image_b": [2], "distance": [0], "exact": [True]})
    assert _rules(I.duplicate_findings(pairs, {1: {"cat", "dog"}, 2: {"dog", "cat"}})) == ["duplicate_image"]


# ------------------------------------------------------- required content --
def test_required_annotations_and_attributes():
    images = pd.DataFrame({"attributes": [{"light": "day"}, {"light": ""}, {"light": "night"}]}, index=[1, 2, 3])
    ann = pd.DataFrame({"task": [1, 2, 3], "kind": ["label", "label", "box"]})
    f = I.required_findings(images, ann, kinds=["label"], attributes=["light"])
    assert f[["rule", "image"]].values.tolist() == [["missing_attribute", 2], ["missing_annotation", 3]]
    assert I.required_findings(images.iloc[:1], ann, kinds=["label"], attributes=["light"]).empty
    assert I.required_findings(images, ann).empty  # any kind counts by default


def test_unknown_class():
    ann = pd.DataFrame({"task": [1, 1], "worker": ["ana", "ben"], "label": ["cat", "unicorn"]}, index=[5, 6])
    f = I.class_findings(ann, ["cat", "dog"])
    assert f[["rule", "annotation", "label"]].values.tolist() == [["unknown_class", 6, "unicorn"]]
    assert I.class_findings(ann.iloc[:1], ["cat"]).empty


# ------------------------------------------------------------------ geometry --
DEFECTS = [
    ("box_out_of_bounds", "box", {"x0": 30, "y0": 5, "x1": 41, "y1": 20}),
    ("box_zero_area", "box", {"x0": 5, "y0": 5, "x1": 5, "y1": 20}),
    ("polygon_out_of_bounds", "polygon", {"points": [[1, 1], [20, 1], [20, 31.2]]}),
    ("polygon_degenerate", "polygon", {"points": [[1, 1], [5, 5], [9, 9]]}),
    ("polygon_self_intersecting", "polygon", {"points": [[5, 5], [20, 20], [20, 5], [5, 20]]}),
    ("polygon_invalid", "polygon", {"points": [[0, 0], [10, 0], [10, 10], [0, 10]],
                                    "holes": [[[20, 20], [25, 20], [25, 25]]]}),
    ("ellipse_nonpositive_radius", "ellipse", {"cx": 10, "cy": 10, "rx": 0, "ry": 3, "angle": 0}),
    ("ellipse_out_of_bounds", "ellipse", {"cx": 38, "cy": 10, "rx": 5, "ry": 3, "angle": 0}),
    ("point_out_of_bounds", "point", {"points": [[10, 10], [45, 3]]}),
    ("mask_empty", "mask", encode_rle(np.zeros((30, 40), bool))),
    ("mask_size_mismatch", "mask", encode_rle(np.ones((20, 40), bool))),
    ("geometry_unreadable", "box", {"x0": 1, "y0": 2}),
]
CLEAN = [
    ("box", {"x0": 0, "y0": 0, "x1": 40.4, "y1": 30}),  # within the 0.5 px tolerance
    ("polygon", {"points": [[1, 1], [20, 1], [20, 20]]}),
    ("polygon", {"parts": [{"points": [[1, 1], [5, 1], [5, 5]]}, {"points": [[10, 10], [15, 10], [15, 15]]}]}),
    ("ellipse", {"cx": 20, "cy": 15, "rx": 5, "ry": 3, "angle": 30}),
    ("point", {"points": [[0, 0], [40, 30]]}),
    ("mask", encode_rle(np.pad(np.ones((5, 5), bool), ((0, 25), (0, 35))))),
    ("label", None),
]


@pytest.mark.parametrize("rule,kind,geometry", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_geometry_defect(rule, kind, geometry):
    f = I.geometry_findings(_ann(kind, geometry), SIZES)
    assert rule in _rules(f)
    row = f[f["rule"] == rule].iloc[0]
    assert (row["image"], row["annotation"], row["worker"]) == (1, 7, "ana") and row["detail"]


@pytest.mark.parametrize("kind,geometry", CLEAN, ids=[f"{k}{i}" for i, (k, _) in enumerate(CLEAN)])
def test_geometry_clean(kind, geometry):
    assert I.geometry_findings(_ann(kind, geometry), SIZES).empty


@pytest.mark.parametrize("kind,geometry,finding", [
    ("box", {"x0": 30, "y0": 5, "x1": 41, "y1": 20},
     ["box_out_of_bounds", "box (30, 5, 41, 20) outside the 40x30 image"]),
    ("box", {"x0": 5, "y0": 5, "x1": 5, "y1": 20}, ["box_zero_area", "box (5, 5, 5, 20) is 0 x 15 px"]),
    ("polygon", {"points": [[1, 1], [20, 1], [20, 31.2]]},
     ["polygon_out_of_bounds", "bounds (1, 1, 20, 31.2) outside the 40x30 image"]),
    ("ellipse", {"cx": 20, "cy": 28, "rx": 5, "ry": 3, "angle": 90},
     ["ellipse_out_of_bounds", "bounds (17, 23, 23, 33) outside the 40x30 image"]),
    ("point", {"points": [[10, 10], [45, 3]]},
     ["point_out_of_bounds", "point(s) [[45.0, 3.0]] outside the 40x30 image"]),
    ("box", {"x0": 1, "y0": 2}, ["geometry_unreadable", "box geometry cannot be read: 'x1'"]),
])
def test_geometry_messages(kind, geometry, finding):
    """The bounds come from labkit.geometry.geometry_bounds; the messages are part of the report."""
    assert I.geometry_findings(_ann(kind, geometry), SIZES)[["rule", "detail"]].values.tolist() == [finding]


def test_geometry_needs_the_image_size():
    with pytest.raises(ValueError, match="image 1, which sizes does not list"):
        I.geometry_findings(_ann("box", {"x0": 0, "y0": 0, "x1": 1, "y1": 1}), SIZES.iloc[:0])


def _masks(*slices, worker=("ana", "ana")):
    ms = []
    for sl in slices:
        m = np.zeros((30, 40), bool)
        m[sl] = True
        ms.append(encode_rle(m))
    return pd.DataFrame({"task": 1, "worker": list(worker), "kind": "mask", "label": "cat", "geometry": ms},
                        index=[10, 11])


def test_instance_overlap():
    f = I.overlap_findings(_masks(np.s_[0:10, 0:10], np.s_[5:15, 5:15]))
    assert f[["rule", "annotation", "related"]].values.tolist() == [["instance_overlap", 10, 11]]
    assert "share 25 px (25% of the smaller)" in f["detail"][0]
    assert I.overlap_findings(_masks(np.s_[0:10, 0:10], np.s_[5:15, 5:15]), max_overlap=0.3).empty


def test_overlap_clean_cases():
    assert I.overlap_findings(_masks(np.s_[0:10, 0:10], np.s_[10:20, 10:20])).empty  # touching, disjoint
    # two annotators may overlap: their masks are alternatives, not instances of one set
    assert I.overlap_findings(_masks(np.s_[0:10, 0:10], np.s_[5:15, 5:15], worker=("ana", "ben"))).empty


def test_rules_have_dimensions_and_summary():
    assert all(dim in ("completeness", "cleanliness", "annotation_quality") for dim, _, _ in I.RULES.values())
    f = pd.concat([I.geometry_findings(_ann(k, g), SIZES) for _, k, g in DEFECTS[:3]], ignore_index=True)
    s = I.summarize_findings(f)
    assert s.loc["box_out_of_bounds", "findings"] == 1 and s.loc["box_out_of_bounds", "images"] == 1
    assert list(f.columns) == list(I.FINDING_COLUMNS)


def test_bad_tables_are_named():
    with pytest.raises(ValueError, match=r"annotations lacks columns \['geometry'\]"):
        I.geometry_findings(pd.DataFrame({"task": [1], "kind": ["box"]}), SIZES)
    with pytest.raises(ValueError, match="hashes must be a Series"):
        I.find_duplicates([1, 2])
