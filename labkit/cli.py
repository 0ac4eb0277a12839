"""The ``labkit`` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from labkit._version import __version__

PROJECT = click.option("--project", "-P", "project", required=True,
                       help="Project folder (SQLite) or postgresql:// URL.")


def _open(location: str):
    from labkit.store import Project

    return Project.open(location)


class _Errors(click.Group):
    """Show labkit's own errors (bad input) as one clean message, not a traceback."""

    def invoke(self, ctx):
        from labkit.store import ImageError, ImportProblem, ProjectError

        try:
            return super().invoke(ctx)
        except (ProjectError, ImageError, ImportProblem, ValueError, FileNotFoundError, PermissionError) as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Errors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labkit")
def main():
    """labkit: label images with SAM, score difficulty, measure agreement, audit quality."""


@main.command()
@click.option("--out", default="demo_project", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo project.")
@click.option("--digits", "n_digits", default=300, show_default=True, help="How many digit images.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild an existing demo project in --out.")
def demo(out, n_digits, seed, force):
    """Build the demo project from images that ship with installed packages and summarise it."""
    from labkit.demo import build_demo, summary

    p = build_demo(out, n_digits=n_digits, seed=seed, force=force)
    click.echo(summary(p))


@main.group()
def project():
    """Create and inspect projects."""


@project.command("create")
@click.argument("location")
@click.option("--classes", required=True, help="Comma-separated class names, e.g. cat,dog.")
def project_create(location, classes):
    """Create an empty project at LOCATION (folder or postgresql:// URL)."""
    from labkit.store import Project

    p = Project.create(location, classes=[c.strip() for c in classes.split(",") if c.strip()])
    click.echo(f"created {p.location} with {len(p.classes())} classes")


@project.command("info")
@click.argument("location")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def project_info(location, as_json):
    """Summarise the project at LOCATION."""
    from labkit.demo import summary

    p = _open(location)
    click.echo(json.dumps(p.info(), indent=2, default=str) if as_json else summary(p))


@main.group()
def images():
    """Manage images."""


@images.command("add")
@PROJECT
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--split", default=None)
@click.option("--subject", default=None, help="Data subject shown in all these images.")
@click.option("--consent", type=click.Choice(["given", "unknown"]), default="unknown", show_default=True,
              help="Consent status recorded for a new subject.")
@click.option("--purpose", default=None, help="What a new subject's data may be used for.")
def images_add(project, paths, split, subject, consent, purpose):
    """Add image files or folders (all or nothing)."""
    from labkit.store.images import expand_paths

    p = _open(project)
    files = [q for path in paths for q in expand_paths(path)]
    ids = p.add_images(files, split=split, subject=subject, consent=consent, purpose=purpose)
    click.echo(f"added {len(ids)} images")


@main.group()
def annotators():
    """Manage annotators."""


@annotators.command("add")
@PROJECT
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "annotator", "viewer"]), default="annotator",
              show_default=True)
@click.option("--db-user", default=None, help="PostgreSQL: the database login of this person.")
@click.option("--password", is_flag=True, help="PostgreSQL: create the login; the password is asked for.")
def annotators_add(project, name, role, db_user, password):
    """Register a person (PostgreSQL: with their own database login)."""
    pw = click.prompt(f"password for {db_user or name}", hide_input=True,
                      confirmation_prompt=True) if password else None
    _open(project).add_annotator(name, role=role, db_user=db_user, password=pw)
    click.echo(f"added {name} ({role})")


@main.command()
@PROJECT
@click.option("--annotators", "names", required=True, help="Comma-separated annotator names.")
@click.option("--overlap", default=1, show_default=True, help="Annotators per image.")
@click.option("--split", default=None, help="Only images of this split.")
def assign(project, names, overlap, split):
    """Distribute images to annotators, balanced, OVERLAP annotators per image."""
    p = _open(project)
    ids = p.images(split=split).index.tolist()
    new = p.assign(ids, [n.strip() for n in names.split(",")], overlap=overlap)
    click.echo(f"{len(new)} new assignments")
    click.echo(p.progress().to_string())


@main.command("import")
@PROJECT
@click.argument("path", type=click.Path(exists=True))
@click.option("--format", "fmt", required=True, help="See `labkit formats`.")
@click.option("--annotator", default=None, help="Attribute the annotations to this annotator.")
@click.option("--images-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Add images the file names from this folder.")
@click.option("--add-classes", is_flag=True, help="Add classes the project lacks.")
def import_(project, path, fmt, annotator, images_dir, add_classes):
    """Import annotations from another tool (all or nothing)."""
    s = _open(project).import_annotations(path, format=fmt, annotator=annotator, images_dir=images_dir,
                                          add_classes=add_classes)
    click.echo(f"imported {s}")


@main.command()
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
    out = _open(project).export(path, format=fmt, images=with_images, anonymize=anonymize,
                                strip_metadata=strip_metadata, recipient=recipient)
    click.echo(f"wrote {out}")


@main.command()
def formats():
    """List the annotation formats labkit reads and writes."""
    from labkit.formats import FORMATS

    for name, (reader, writer) in FORMATS.items():
        click.echo(f"{name:<12} {'read' if reader else '    '} {'write' if writer else ''}")


def _register() -> None:
    from labkit import cli_pool, cli_privacy, cli_report
    from labkit.cli_embed import embed
    from labkit.cli_verify import verify

    main.add_command(embed)
    main.add_command(cli_report.report)
    main.add_command(cli_report.inspect)
    main.add_command(cli_pool.pool)
    main.add_command(cli_pool.issues)
    main.add_command(cli_privacy.privacy)
    main.add_command(cli_privacy.migrate)
    main.add_command(verify)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
