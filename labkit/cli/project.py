"""``labkit project|images|classes|annotators|assign``: projects, images, classes, people and their work."""
from __future__ import annotations

import json

import click

from labkit.cli._common import LOCATION, PROJECT, SCHEDULER, ErrorsCommand, ErrorsGroup, dask_client, open_project

_ROLES = click.Choice(["admin", "annotator", "viewer"])


def _csv(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


@click.group(cls=ErrorsGroup)
def project():
    """Create and inspect projects."""


@project.command("create")
@LOCATION
@click.option("--classes", required=True, help="Comma-separated class names, e.g. cat,dog.")
def project_create(location, classes):
    """Create an empty project at LOCATION (folder or postgresql:// URL)."""
    from labkit.services.project import Project

    p = Project.create(location, classes=_csv(classes))
    click.echo(f"created {p.location} with {len(p.classes())} classes")


@project.command("info")
@LOCATION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def project_info(location, as_json):
    """Summarise the project at LOCATION."""
    from labkit.services.summary import project_summary

    p = open_project(location)
    click.echo(json.dumps(p.info(), indent=2, default=str) if as_json else project_summary(p))


@click.group(cls=ErrorsGroup)
def images():
    """Manage images."""


@images.command("add")
@PROJECT
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--manifest", type=click.Path(dir_okay=False), default=None,
              help="Register the images a .csv/.parquet file lists (columns path, width, height, sha256; "
                   "optional split, subject) without reading them; `labkit verify` re-hashes them later.")
@click.option("--split", default=None)
@click.option("--subject", default=None, help="Data subject shown in all these images.")
@click.option("--consent", type=click.Choice(["given", "unknown"]), default="unknown", show_default=True,
              help="Consent status recorded for a new subject.")
@click.option("--purpose", default=None, help="What a new subject's data may be used for.")
@SCHEDULER
def images_add(project, paths, manifest, split, subject, consent, purpose, scheduler):
    """Add image files or folders, or the images of a manifest (all or nothing)."""
    from labkit.store.files import expand_paths

    if bool(paths) == bool(manifest):
        raise click.UsageError("give image files or folders, or --manifest FILE (one of the two)")
    p = open_project(project)
    if manifest:
        ids = p.add_images(manifest=manifest, split=split, subject=subject, consent=consent, purpose=purpose)
    else:
        files = [q for path in paths for q in expand_paths(path)]
        with dask_client(scheduler) as client:
            ids = p.add_images(files, split=split, subject=subject, consent=consent, purpose=purpose,
                               client=client)
    click.echo(f"added {len(ids)} images")


@images.command("list")
@PROJECT
@click.option("--split", default=None, help="Only images of this split.")
def images_list(project, split):
    """List the images you may see: id, split, size and path."""
    table = open_project(project).images(split=split)
    lines = [f"{image:>6}  {sp or '-':<8} {w}x{h:<6} {path}" for image, sp, w, h, path in zip(
        table.index, table["split"], table["width"], table["height"], table["path"])]
    click.echo("\n".join([*lines, f"{len(table)} images"]))


@click.group(cls=ErrorsGroup)
def classes():
    """Manage the taxonomy."""


@classes.command("add")
@PROJECT
@click.argument("names", nargs=-1, required=True)
def classes_add(project, names):
    """Append classes NAMES to the taxonomy (all or nothing; admins only)."""
    p = open_project(project)
    p.add_classes(list(names))
    click.echo(f"added {len(names)} classes; the project has {', '.join(p.classes())}")


@click.group(cls=ErrorsGroup)
def annotators():
    """Manage annotators."""


@annotators.command("add")
@PROJECT
@click.argument("name")
@click.option("--role", type=_ROLES, default="annotator", show_default=True)
@click.option("--db-user", default=None, help="PostgreSQL: the database login of this person.")
@click.option("--password", is_flag=True, help="PostgreSQL: create the login; the password is asked for.")
def annotators_add(project, name, role, db_user, password):
    """Register a person (PostgreSQL: with their own database login)."""
    pw = click.prompt(f"password for {db_user or name}", hide_input=True,
                      confirmation_prompt=True) if password else None
    open_project(project).add_annotator(name, role=role, db_user=db_user, password=pw)
    click.echo(f"added {name} ({role})")


@annotators.command("set-role")
@PROJECT
@click.argument("name")
@click.argument("role", type=_ROLES)
def annotators_set_role(project, name, role):
    """Give member NAME the role ROLE (admins only; PostgreSQL: their grants change with it)."""
    open_project(project).set_role(name, role)
    click.echo(f"{name} is now {role}")


@click.command(cls=ErrorsCommand)
@PROJECT
@click.option("--annotators", "names", required=True, help="Comma-separated annotator names.")
@click.option("--overlap", default=1, show_default=True, help="Annotators per image.")
@click.option("--split", default=None, help="Only images of this split.")
@click.option("--images", "image_ids", default=None, help="Only these comma-separated image ids.")
def assign(project, names, overlap, split, image_ids):
    """Distribute images to annotators, balanced, OVERLAP annotators per image."""
    if image_ids is not None and split is not None:
        raise click.UsageError("give --images or --split, not both")
    try:
        chosen = None if image_ids is None else [int(i) for i in _csv(image_ids)]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated image ids such as 1,2,3; got {image_ids!r}",
                                 param_hint="--images") from None
    p = open_project(project)
    ids = p.images(split=split).index.tolist() if chosen is None else chosen
    new = p.assign(ids, _csv(names), overlap=overlap)
    click.echo(f"{len(new)} new assignments")
    click.echo(p.progress().to_string())
