"""``labkit prelabel``: models propose annotations for a project's images, for people to review.

Importing this module costs only click.
"""
from __future__ import annotations

import click

from labkit.cli._common import PROJECT, SCHEDULER, ErrorsCommand, dask_client, open_project, user_error


@click.command("prelabel", cls=ErrorsCommand)
@PROJECT
@click.option("--source", "source", type=click.Choice(["boxes", "auto", "pool"]), required=True,
              help="boxes: a mask from every box (SAM or GrabCut); auto: SAM's automatic masks (segment "
                   "everything); pool: an image-level class from the project's model pool.")
@click.option("--segmenter", "name", default=None, metavar="NAME",
              help="boxes/auto: a registered segmenter (grabcut, sam_vit_b, sam_vit_l, sam_vit_h). Default: SAM "
                   "when $LABKIT_SAM_CHECKPOINT is set, else GrabCut.")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="SAM weights (default: $LABKIT_SAM_CHECKPOINT).")
@click.option("--boxes-of", "boxes", default=None, metavar="ANNOTATOR",
              help="boxes: only this annotator's boxes (default: every box).")
@click.option("--label", default=None, help="auto: the class of the masks (default: the project's first class).")
@click.option("--pool", "pool", default="default", show_default=True, help="pool: the trained pool's name.")
@click.option("--split", default=None, help="Only images of this split.")
@click.option("--annotator", default=None, help="Store the proposals under this member (default: you).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Images per stored batch (and per Dask task).")
@SCHEDULER
def prelabel(project: str, source: str, name: str | None, checkpoint: str | None, boxes: str | None,
             label: str | None, pool: str, split: str | None, annotator: str | None, batch_size: int,
             scheduler: str | None) -> None:
    """Propose annotations (admins); people review them with Labeler(project, annotator=..., review=True).

    Proposals are not delivered labels until a reviewer accepts them. Resumable: images
    that already hold proposals of this pre-labeler and model are skipped, and every
    batch is stored as it finishes, so run it again after an interruption. With
    --scheduler the work runs on that Dask cluster; its workers read the images (which
    they must see at the same paths) and never open the project's database.
    """
    from labkit.models.embeddings import project_cache_dir
    from labkit.models.prelabelers import prelabel as run
    from labkit.models.segmenters.registry import load_segmenter

    p = open_project(project)
    try:
        segmenter = None
        if name is not None and source != "pool":
            try:
                segmenter = load_segmenter(name, checkpoint=checkpoint, cache_dir=project_cache_dir(p))
            except (ValueError, FileNotFoundError) as exc:
                raise user_error(exc) from exc
        images = None if split is None else [int(i) for i in p.images(split=split).index]
        with dask_client(scheduler) as client:
            made = run(p, source=source, segmenter=segmenter, images=images, annotator=annotator, client=client,
                       boxes=boxes, label=label, pool=pool, batch_size=batch_size)
    finally:
        p.close()
    skipped = made.attrs["skipped"]
    click.echo(f"{len(made)} proposal(s) on {made['image'].nunique()} image(s) from {made.attrs['model_id']}"
               + (f"; {len(skipped)} image(s) already had them (skipped)" if skipped else ""))
    for (src, lab), n in made.groupby(["source", "label"]).size().items():
        click.echo(f"  {src} {lab}: {n}")
    if len(made):
        click.echo("review them with Labeler(project, annotator=..., review=True)")
