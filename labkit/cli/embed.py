"""``labkit embed``: precompute a project's image embeddings into its cache.

Importing this module costs only click.
"""
from __future__ import annotations

import click

from labkit.cli._common import PROJECT, ErrorsCommand, open_project, user_error


@click.command("embed", cls=ErrorsCommand)
@PROJECT
@click.option("--segmenter", "name", default="sam_vit_b", show_default=True,
              help="A registered segmenter with embeddings (sam_vit_b, sam_vit_l, sam_vit_h).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="SAM weights (default: $LABKIT_SAM_CHECKPOINT).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Embedding cache (default: <project>/cache/embeddings, the labeler's).")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--split", default=None, help="Only images of this split.")
def embed(project: str, name: str, checkpoint: str | None, cache_dir: str | None, device: str | None,
          split: str | None) -> None:
    """Compute and cache the image embedding of every image in the project.

    Resumable: images already in the cache are skipped, and each entry is written to a
    temporary file and renamed, so an interrupted run leaves no corrupt entry. Run it
    again to finish.
    """
    from tqdm.auto import tqdm

    from labkit.models.embeddings import project_cache_dir
    from labkit.models.segmenters.registry import load_segmenter
    p = open_project(project)
    try:
        try:
            seg = load_segmenter(name, checkpoint=checkpoint, device=device,
                                 cache_dir=cache_dir or project_cache_dir(p), decoder="torch")
        except (ValueError, FileNotFoundError) as exc:
            raise user_error(exc) from exc
        if not seg.has_embeddings:
            raise click.ClickException(f"segmenter {name!r} has no embeddings to precompute; "
                                       "use a SAM segmenter (sam_vit_b, sam_vit_l, sam_vit_h)")
        cache = seg.cache  # type: ignore[attr-defined]  # has_embeddings: a SAM segmenter, with a cache
        cache.remove_stale_tmp()
        table = p.images(split=split)
        todo = [(int(i), str(h)) for i, h in table["sha256"].items() if not seg.is_cached(str(h))]
        cached = len(table) - len(todo)
        click.echo(f"{len(table)} images, {cached} already cached, {len(todo)} to compute "
                   f"with {seg.model_id} into {cache.folder}")
        failed: dict[int, str] = {}
        for image_id, key in tqdm(todo, desc="embedding", unit="img", disable=not todo):
            try:
                seg.precompute(p.read_image(image_id), key=key)
            except (ValueError, OSError) as exc:  # a missing or changed file: report, go on
                failed[image_id] = str(exc)
        click.echo(f"computed {len(todo) - len(failed)}, skipped {cached}, failed {len(failed)}")
        for image_id, why in list(failed.items())[:20]:
            click.echo(f"  image {image_id}: {why}", err=True)
        if failed:
            raise click.ClickException(f"{len(failed)} image(s) failed; fix them and run again "
                                       "(finished images are kept)")
    finally:
        p.close()
