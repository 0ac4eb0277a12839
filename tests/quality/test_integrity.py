"""Integrity rules: each with a planted defect and a clean case."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from labkit.geometry import encode_rle
from labkit.quality import integrity as I

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
    from labkit.store.images import sha256_file

    paths = [_img(tmp_path / f"{i}.png", seed=i) for i in range(4)]
    table = pd.DataFrame({"path": [str(p) for p in paths], "sha256": [sha256_file(p) for p in paths]},
                         index=[1, 2, 3, 4])
    return table, paths


def test_clean_files_have_no_findings(files):
    table, _ = files
    report = I.inspect_files(table)
    assert (report["status"] == "ok").all() and report["phash"].notna().all()
    assert I.file_findings(report).empty


def test_missing_file(files):
    table, paths = files
    paths[0].unlink()
    f = I.file_findings(I.inspect_files(table))
    assert _rules(f) == ["missing_file"] and f["image"].tolist() == [1] and str(paths[0]) in f["detail"][0]


def test_unreadable_file(files):
    table, paths = files
    paths[1].write_bytes(paths[1].read_bytes()[:60])
    f = I.file_findings(I.inspect_files(table))
    assert _rules(f) == ["unreadable_file"] and f["image"].tolist() == [2]


def test_hash_changed(files):
    table, paths = files
    a = np.asarray(Image.open(paths[2])).copy()
    a[0, 0] ^= 1
    Image.fromarray(a).save(paths[2])
    f = I.file_findings(I.inspect_files(table))
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
