"""The delivered-label definition (:mod:`labkit.quality.delivered`): ties, references, consensus,
one vote per annotator, the agreement input, and a brute-force cross-check on random tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.quality import Delivery, deliver, find_references, krippendorff_alpha

CLASSES = ["dog", "cat", "bird"]  # not alphabetical: ties follow this order, not the sorted one


def table(rows, *, simulated=None) -> pd.DataFrame:
    """A long annotation table from ``(task, worker, label, source)`` rows (annotation ids 1..n)."""
    df = pd.DataFrame(rows, columns=["task", "worker", "label", "source"], index=pd.RangeIndex(1, len(rows) + 1))
    df.index.name = "annotation"
    df["kind"] = "label"
    if simulated is not None:
        df["simulated"] = df["worker"].isin(simulated)
    return df


# ----------------------------------------------------------------------------------- ties --
def test_a_tie_goes_to_the_class_listed_first_and_is_reported():
    df = table([(1, "ana", "cat", "human"), (1, "ben", "dog", "human"),
                (2, "ana", "bird", "human"), (2, "ben", "cat", "human"), (2, "cy", "dog", "human"),
                (3, "ana", "cat", "human"), (3, "ben", "cat", "human"), (3, "cy", "dog", "human")])
    d = deliver(df, CLASSES, find=False)
    assert d.labels.to_dict() == {1: "dog", 2: "dog", 3: "cat"}
    assert list(d.ties) == [1, 2] and d.decided_by[3] == "majority"
    assert deliver(df, ["cat", "dog", "bird"], find=False).labels.to_dict() == {1: "cat", 2: "cat", 3: "cat"}
    assert "ties go to the class listed first: 2 image(s)" in d.describe()


def test_labels_outside_the_classes_come_after_them_sorted():
    df = table([(1, "ana", "zebra", "human"), (1, "ben", "ant", "human"), (2, "ana", "ant", "human"),
                (2, "ben", "cat", "human")])
    assert deliver(df, CLASSES, find=False).labels.to_dict() == {1: "ant", 2: "cat"}


# ---------------------------------------------------------------------------- references --
def test_a_reference_is_not_a_vote_nor_in_agreement():
    df = table([(1, "ana", "cat", "human"), (1, "ben", "dog", "human"), (1, "ref", "cat", "import:gt"),
                (2, "ana", "dog", "human"), (2, "ref", "bird", "import:gt"), (3, "ref", "bird", "import:gt")])
    with_ref = deliver(df, CLASSES, find=False)
    assert with_ref.labels.to_dict() == {1: "cat", 2: "dog", 3: "bird"}  # everyone votes
    d = deliver(df, CLASSES, references=["ref"], find=False)
    assert d.labels.to_dict() == {1: "dog", 2: "dog"}  # 1 is a tie without ref; 3 has no vote
    assert d.voters == ("ana", "ben") and d.references == ("ref",)
    assert set(d.votes["worker"]) == {"ana", "ben"}
    assert d.agreement_votes["task"].tolist() == [1, 1]  # images with two voters only
    assert "reference 'ref' excluded" in d.describe()


def test_references_of_a_simulation_are_found():
    rows = [(1, "dataset", "cat", "import:digits"), (1, "sim-a", "cat", "simulated"), (1, "sim-b", "dog", "simulated"),
            (2, "dataset", "dog", "import:digits"), (2, "sim-a", "bird", "simulated"), (2, "sim-b", "dog", "simulated"),
            (1, "vendor", "dog", "import:coco"), (9, "other", "cat", "import:coco"), (1, "ana", "cat", "human")]
    df = table(rows, simulated={"sim-a", "sim-b"})
    # vendor is imported on a simulated image too; other shares no image with the simulation; ana is a person
    assert find_references(df) == ["dataset", "vendor"]
    mixed = pd.concat([df, table([(5, "dataset", "cat", "human")], simulated=set())], ignore_index=True)
    assert "dataset" not in find_references(mixed)  # not all of its labels were imported
    assert find_references(df.assign(simulated=False)) == []  # no simulation: everyone votes
    assert find_references(table([], simulated=set())) == []
    d = deliver(df, CLASSES, references=["ana"])  # declared references add to the found ones
    assert d.references == ("ana", "dataset", "vendor") and d.voters == ("other", "sim-a", "sim-b")
    assert d.labels.to_dict() == {1: "dog", 2: "dog", 9: "cat"}  # 1: a tie cat/dog goes to "dog", listed first


def test_consensus_rows_do_not_make_an_annotator_a_reference_and_boxes_are_ignored():
    df = table([(1, "dataset", "cat", "import:x"), (1, "sim", "cat", "simulated"), (1, "dataset", "dog", "consensus")],
               simulated={"sim"})
    df.loc[df.index[2], "kind"] = "box"
    assert find_references(df) == ["dataset"]
    assert deliver(df, CLASSES).labels.to_dict() == {1: "cat"}


# ----------------------------------------------------------------------------- consensus --
def test_a_stored_consensus_decides_and_never_votes():
    df = table([(1, "ana", "cat", "human"), (1, "ben", "cat", "human"), (1, "consensus", "dog", "consensus"),
                (2, "ana", "cat", "human"), (2, "ben", "dog", "human"), (2, "consensus", "bird", "consensus"),
                (2, "boss", "cat", "consensus"), (4, "boss", "cat", "consensus")])
    d = deliver(df, CLASSES, find=False)
    assert d.labels.to_dict() == {1: "dog", 2: "cat", 4: "cat"}  # 2: the latest consensus; 4: consensus only
    assert d.decided_by.tolist() == ["consensus"] * 3 and len(d.ties) == 0
    assert d.voters == ("ana", "ben") and (d.votes["source"] != "consensus").all()
    assert d.agreement_votes["task"].tolist() == [1, 1, 2, 2]  # agreement is the annotators', not the decision's
    assert "stored consensus (3 image(s))" in d.describe()


# --------------------------------------------------------------------- one vote per person --
def test_an_annotator_votes_once_per_image_with_its_latest_label():
    df = table([(1, "ana", "cat", "human"), (1, "ana", "cat", "human"), (1, "ana", "bird", "human"),
                (1, "ben", "dog", "human")])
    d = deliver(df, CLASSES, find=False)
    assert d.labels[1] == "dog" and d.decided_by[1] == "tie"  # bird vs dog, not 2 cats vs 1 dog
    assert d.votes.index.tolist() == [3, 4]  # the rows that count, with their annotation ids


# ---------------------------------------------------------------------------- edge cases --
def test_empty_and_shapes():
    d = deliver(table([]), CLASSES, find=False)
    assert isinstance(d, Delivery) and d.labels.empty and d.labels.name == "label"
    assert d.labels.index.name == "image" and d.labels.index.dtype == np.int64
    assert d.agreement_votes.empty and d.voters == ()
    df = table([(3, "ana", "cat", "human"), (1, "ana", "dog", "human")])
    d = deliver(df, CLASSES, find=False)
    assert d.labels.index.tolist() == [1, 3] and d.decided_by.index.equals(d.labels.index)


def test_bad_input_is_an_error_that_says_what_to_pass():
    df = table([(1, "ana", "cat", "human")])
    with pytest.raises(ValueError, match=r"lacks columns \['simulated'\] needed for delivered labels; found"):
        deliver(df, CLASSES)
    with pytest.raises(ValueError, match=r"lacks columns \['source'\].*project.annotations\(\) has them all"):
        deliver(df.drop(columns="source"), CLASSES, find=False)
    with pytest.raises(ValueError, match=r"references is the string 'ana'; expected a list of names, e.g. "
                                         r"references=\['ana'\]"):
        deliver(df, CLASSES, references="ana", find=False)
    with pytest.raises(ValueError, match="annotations has type list; expected a pandas DataFrame"):
        deliver([], CLASSES)
    with pytest.raises(ValueError, match="classes has type NoneType; expected a list of names"):
        deliver(df, None, find=False)


# ------------------------------------------------------------------ properties and peers --
@st.composite
def votes(draw):
    """Random label tables: up to 20 images x 5 annotators x 3 classes, some repeated labels."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 21)), int(rng.integers(1, 6))
    rows = [(int(t), f"w{int(w)}", CLASSES[int(rng.integers(0, 3))], "human")
            for t in range(n) for w in range(m) if rng.random() < 0.6]
    rows += [(r[0], r[1], CLASSES[int(rng.integers(0, 3))], "human") for r in rows if rng.random() < 0.1]
    return table(rows or [(0, "w0", "cat", "human")])


def brute_force(df: pd.DataFrame, classes: list[str]) -> dict:
    """Count each annotator's last label per image; the most votes, ties to the first class."""
    last = {}
    for t, w, lab in zip(df["task"], df["worker"], df["label"]):
        last[(t, w)] = lab
    out = {}
    for t in sorted({t for t, _ in last}):
        counts = [sum(lab == c for (tt, _), lab in last.items() if tt == t) for c in classes]
        out[t] = classes[int(np.argmax(counts))]
    return out


@given(votes())
@settings(max_examples=60, deadline=None)
def test_the_majority_matches_a_brute_force_count(df):
    assert deliver(df, CLASSES, find=False).labels.to_dict() == brute_force(df, CLASSES)


@given(votes(), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_invariant_under_renaming_annotators_and_reordering_images(df, seed):
    rng = np.random.default_rng(seed)
    d = deliver(df, CLASSES, find=False)
    names = {w: f"x{i}" for i, w in enumerate(rng.permutation(sorted(df["worker"].unique())))}
    renamed = df.assign(worker=df["worker"].map(names))
    # reorder images but keep each annotator's labels in their order (the latest still wins)
    rank = dict(zip(sorted(df["task"].unique()), rng.permutation(df["task"].nunique())))
    shuffled = renamed.iloc[np.argsort(renamed["task"].map(rank).to_numpy(), kind="stable")]
    other = deliver(shuffled, CLASSES, find=False)
    assert other.labels.equals(d.labels) and other.decided_by.equals(d.decided_by)
    long = d.agreement_votes
    if long["task"].nunique() >= 1 and long["label"].nunique() >= 2:
        again = other.agreement_votes.assign(worker=lambda x: x["worker"].map({v: k for k, v in names.items()}))
        assert krippendorff_alpha(again) == pytest.approx(krippendorff_alpha(long), abs=1e-12)
