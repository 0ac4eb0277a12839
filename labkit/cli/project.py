"""``labkit project|images|annotators|assign``: create projects, add images and people, distribute work."""
from __future__ import annotations

import json

import click

from labkit.cli._common import PROJECT, open_project


@click.group()
def project():
    """Create and inspect projects."""


@project.command("create")
@click.argument("location")
@click.option("--classes", required=True, help="Comma-separated class names, e.g. cat,dog.")
def project_create(location, classes):
    """Create an empty project at LOCATION (folder or postgresql:// URL)."""
    from labkit.services.project import Project

    p = Project.create(location, classes=[c.strip() for c in classes.split(",") if c.strip()])
    click.echo(f"created {p.location} with {len(p.classes())} classes")


@project.command("info")
@click.argument("location")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def project_info(location, as_json):
    """Summarise the project at LOCATION."""
    from labkit.services.summary import project_summary

    p = open_project(location)
    click.echo(json.dumps(p.info(), indent=2, default=str) if as_json else project_summary(p))


@click.group()
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
    from labkit.store.files import expand_paths

    p = open_project(project)
    files = [q for path in paths for q in expand_paths(path)]
    ids = p.add_images(files, split=split, subject=subject, consent=consent, purpose=purpose)
    click.echo(f"added {len(ids)} images")


@click.group()
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
    open_project(project).add_annotator(name, role=role, db_user=db_user, password=pw)
    click.echo(f"added {name} ({role})")


@click.command()
@PROJECT
@click.option("--annotators", "names", required=True, help="Comma-separated annotator names.")
@click.option("--overlap", default=1, show_default=True, help="Annotators per image.")
@click.option("--split", default=None, help="Only images of this split.")
def assign(project, names, overlap, split):
    """Distribute images to annotators, balanced, OVERLAP annotators per image."""
    p = open_project(project)
    ids = p.images(split=split).index.tolist()
    new = p.assign(ids, [n.strip() for n in names.split(",")], overlap=overlap)
    click.echo(f"{len(new)} new assignments")
    click.echo(p.progress().to_string())
