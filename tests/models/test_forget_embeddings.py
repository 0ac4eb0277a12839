"""Erasing images from the embedding cache: every model's entry and stray temp files, nothing else."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit._util.atomic import temp_name
from labkit.models.embeddings import EmbeddingCache, forget_keys, project_cache_dir, project_image


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_forget_removes_every_model_entry_and_keeps_the_rest(seg_project, tiny_segmenter):
    cache_dir = project_cache_dir(seg_project)
    keys = {}
    for model_id in ("tiny-a", "tiny-b"):
        seg = tiny_segmenter(cache_dir=cache_dir, model_id=model_id)
        for image_id in seg_project.images().index:
            image, key = project_image(seg_project, int(image_id))
            seg.set_image(image, key=key)
            keys[int(image_id)] = key
        assert seg.encoder_calls == 4
    gone, kept = [keys[1], keys[3]], [keys[2], keys[4]]
    # an interrupted write of a forgotten key, one of a kept key, and a file that is no entry
    stray = temp_name(cache_dir / "tiny-a" / gone[0][:2] / f"{gone[0]}.npy")
    stray.write_bytes(b"partial")
    other_tmp = temp_name(cache_dir / "tiny-b" / kept[0][:2] / f"{kept[0]}.npy")
    other_tmp.write_bytes(b"partial")
    (cache_dir / "onnx").mkdir()
    (cache_dir / "onnx" / "tiny-a.onnx").write_bytes(b"graph")

    counts = forget_keys(cache_dir, gone)

    assert counts == {"embedding_files_removed": 4, "tmp_files_removed": 1}
    json.dumps(counts)  # JSON-ready, and counts only
    assert not any(k in json.dumps(counts) for k in gone)
    names = _files(cache_dir)
    assert not [n for n in names if any(k in n for k in gone)]
    assert other_tmp.exists() and (cache_dir / "onnx" / "tiny-a.onnx").exists()
    for model_id in ("tiny-a", "tiny-b"):
        assert EmbeddingCache(cache_dir, model_id).keys() == sorted(kept)
    # kept images come from the cache; forgotten ones are encoded again
    seg = tiny_segmenter(cache_dir=cache_dir, model_id="tiny-a")
    for image_id in (2, 4, 1):
        image, key = project_image(seg_project, image_id)
        seg.set_image(image, key=key)
    assert seg.encoder_calls == 1  # image 1 only


def test_forget_is_idempotent_and_tolerates_a_missing_cache(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache", "m")
    cache.save("ab" * 32, np.ones((2, 3)))
    assert forget_keys(tmp_path / "cache", ["ab" * 32])["embedding_files_removed"] == 1
    assert forget_keys(tmp_path / "cache", ["ab" * 32]) == {"embedding_files_removed": 0, "tmp_files_removed": 0}
    assert forget_keys(tmp_path / "nothing-here", ["ab" * 32])["embedding_files_removed"] == 0
    assert forget_keys(tmp_path / "cache", [])["embedding_files_removed"] == 0


def test_forget_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"single string \('abc'\); pass a list"):
        forget_keys(tmp_path, "abc")
    with pytest.raises(ValueError, match=r"file-name-safe .* got '\.\./etc'"):
        forget_keys(tmp_path, ["../etc"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; expected an embedding cache folder"):
        forget_keys(tmp_path / "file", ["abc"])


@settings(max_examples=30, deadline=None)
@given(stored=st.sets(st.integers(0, 40), max_size=12), gone=st.sets(st.integers(0, 40), max_size=12),
       models=st.integers(1, 3))
def test_forget_counts_match_the_stored_entries(tmp_path_factory, stored, gone, models):
    root = tmp_path_factory.mktemp("cache")
    key = "{:064x}".format
    for m in range(models):
        cache = EmbeddingCache(root, f"m{m}")
        for i in stored:
            cache.save(key(i * 7919), np.zeros(2))
    counts = forget_keys(root, [key(i * 7919) for i in gone])
    assert counts["embedding_files_removed"] == models * len(stored & gone)
    for m in range(models):
        assert EmbeddingCache(root, f"m{m}").keys() == sorted(key(i * 7919) for i in stored - gone)
    assert not [p for p in root.rglob("*") if p.is_file() and os.path.basename(p).startswith(".")]
