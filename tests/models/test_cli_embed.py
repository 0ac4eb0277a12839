"""``labkit embed``: precomputes a project's embeddings, resumably."""
from __future__ import annotations

from click.testing import CliRunner

from tests.models.conftest import TEST_SEGMENTER


def test_embed_is_resumable(seg_project, registered_tiny, tmp_path):
    from labkit.cli.embed import embed

    args = ["--project", str(seg_project.root), "--segmenter", TEST_SEGMENTER]
    res = CliRunner().invoke(embed, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "4 images, 0 already cached, 4 to compute" in res.output
    assert registered_tiny[-1].encoder_calls == 4
    folder = seg_project.root / "cache" / "embeddings" / registered_tiny[-1].model_id
    files = sorted(folder.glob("*/*.npy"))
    assert len(files) == 4
    # an interrupted run: one entry missing, plus a stale temporary file from the interrupted write
    files[1].unlink()
    (files[0].parent / f".{files[1].stem}.123.456.tmp").write_bytes(b"partial")
    res = CliRunner().invoke(embed, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "4 images, 3 already cached, 1 to compute" in res.output
    assert "computed 1, skipped 3, failed 0" in res.output
    assert registered_tiny[-1].encoder_calls == 1
    assert len(list(folder.glob("*/*.npy"))) == 4
    # nothing left to do
    res = CliRunner().invoke(embed, args, catch_exceptions=False)
    assert "0 to compute" in res.output and registered_tiny[-1].encoder_calls == 0


def test_embed_reports_problems(seg_project, registered_tiny, tmp_path, monkeypatch):
    from labkit.cli.embed import embed

    monkeypatch.delenv("LABKIT_SAM_CHECKPOINT", raising=False)
    res = CliRunner().invoke(embed, ["--project", str(seg_project.root)])
    assert res.exit_code != 0 and "sam_vit_b needs a checkpoint" in res.output
    res = CliRunner().invoke(embed, ["--project", str(seg_project.root), "--segmenter", "grabcut"])
    assert res.exit_code != 0 and "has no embeddings to precompute" in res.output
    res = CliRunner().invoke(embed, ["--project", str(tmp_path / "nowhere"), "--segmenter", TEST_SEGMENTER])
    assert res.exit_code != 0 and "no labkit project" in res.output
    seg_project.image_path(2).unlink()
    res = CliRunner().invoke(embed, ["--project", str(seg_project.root), "--segmenter", TEST_SEGMENTER,
                                     "--cache-dir", str(tmp_path / "elsewhere")])
    assert res.exit_code != 0 and "computed 3, skipped 0, failed 1" in res.output
    assert "image 2" in res.output and "1 image(s) failed" in res.output
    assert len(list((tmp_path / "elsewhere").glob("*/*/*.npy"))) == 3
