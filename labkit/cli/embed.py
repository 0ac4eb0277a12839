"""``labkit embed``: precompute a project's image embeddings into its cache.

Importing this module costs only click.
"""
from __future__ import annotations

import click

from labkit.cli._common import PROJECT, SCHEDULER, ErrorsCommand, dask_client, open_project, user_error


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
@SCHEDULER
def embed(project: str, name: str, checkpoint: str | None, cache_dir: str | None, device: str | None,
          split: str | None, scheduler: str | None) -> None:
    """Compute and cache the image embedding of every image in the project.

    Resumable: images already in the cache are skipped, and each entry is written to a
    temporary file and renamed, so an interrupted run leaves no corrupt entry. Run it
    again to finish. With --scheduler, the images are encoded on that Dask cluster, whose
    workers must see the project's images and the cache folder at the same paths.
    """
    from labkit.models.embeddings import project_cache_dir
    from labkit.models.precompute import precompute_embeddings
    from labkit.models.segmenters.registry import load_segmenter

    p = open_project(project)
    try:
        try:
            seg = load_segmenter(name, checkpoint=checkpoint, device="cpu" if scheduler else device,
                                 cache_dir=cache_dir or project_cache_dir(p), decoder="torch")
        except (ValueError, FileNotFoundError) as exc:
            raise user_error(exc) from exc
        images = None if split is None else [int(i) for i in p.images(split=split).index]
        with dask_client(scheduler) as client:
            table = precompute_embeddings(p, seg, images=images, client=client,
                                          device=device if client is not None else None)
    finally:
        p.close()
    s = table.attrs["summary"]
    click.echo(f"{len(table)} images, {s['skipped']} already cached, {s['computed'] + s['failed']} to compute "
               f"with {table.attrs['model_id']} into {table.attrs['cache']}")
    click.echo(f"computed {s['computed']}, skipped {s['skipped']}, failed {s['failed']}")
    failed = table[table["status"] == "failed"]
    for image, why in failed["error"].head(20).items():
        click.echo(f"  image {image}: {why}", err=True)
    if len(failed):
        raise click.ClickException(f"{len(failed)} image(s) failed; fix them and run again "
                                   "(finished images are kept)")
