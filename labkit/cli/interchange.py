"""``labkit import|export|formats``: annotation files of other tools, in and out."""
from __future__ import annotations

import click

from labkit.cli._common import PROJECT, ErrorsCommand, open_project


@click.command("import", cls=ErrorsCommand)
@PROJECT
@click.argument("path", type=click.Path(exists=True))
@click.option("--format", "fmt", required=True, help="See `labkit formats`.")
@click.option("--annotator", default=None, help="Attribute the annotations to this annotator.")
@click.option("--images-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Add images the file names from this folder.")
@click.option("--add-classes", is_flag=True, help="Add classes the project lacks.")
@click.option("--as-proposals", is_flag=True,
              help="Store the objects as proposals awaiting review (pre-labels), not as delivered labels.")
def import_(project, path, fmt, annotator, images_dir, add_classes, as_proposals):
    """Import annotations from another tool (all or nothing)."""
    s = open_project(project).import_annotations(path, format=fmt, annotator=annotator, images_dir=images_dir,
                                                 add_classes=add_classes, as_proposals=as_proposals)
    click.echo(f"imported {s}")


@click.command(cls=ErrorsCommand)
@PROJECT
@click.argument("path", type=click.Path())
@click.option("--format", "fmt", required=True, help="See `labkit formats`.")
@click.option("--images", "with_images", is_flag=True, help="Also write the image files (to images/).")
@click.option("--anonymize", type=click.Choice(["faces"]), default=None,
              help="Blur faces, pseudonymise subjects and annotators, neutral file names.")
@click.option("--strip-metadata", is_flag=True, help="Write images without EXIF/GPS/XMP/ICC/text metadata.")
@click.option("--recipient", default=None, help="Who receives the export (recorded in the audit log).")
def export(project, path, fmt, with_images, anonymize, strip_metadata, recipient):
    """Export annotations (and images) for another tool; withdrawn subjects are never exported."""
    out = open_project(project).export(path, format=fmt, images=with_images, anonymize=anonymize,
                                       strip_metadata=strip_metadata, recipient=recipient)
    click.echo(f"wrote {out}")


@click.command(cls=ErrorsCommand)
def formats():
    """List the annotation formats labkit reads and writes."""
    from labkit.formats import FORMATS

    for name, (reader, writer) in FORMATS.items():
        click.echo(f"{name:<12} {'read' if reader else '    '} {'write' if writer else ''}")
