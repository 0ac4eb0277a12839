"""``labkit pool train|predict`` and ``labkit issues``: the model pool and label-error candidates.

Importing this module costs only click; torch and timm load when a model runs.
"""
from __future__ import annotations

import click

from labkit.cli._common import (
    PROJECT,
    SCHEDULER,
    ErrorsCommand,
    ErrorsGroup,
    dask_client,
    open_project,
    user_error,
)

_NAME = click.option("--name", default="default", show_default=True,
                     help="The trained pool's name (its folder is <project>/pool/<name>).")
_CHECKPOINT = click.option(
    "--checkpoint", "checkpoints", multiple=True, metavar="ARCH=PATH",
    help="Use your timm checkpoints instead of a trained pool; repeat for each member "
         "(e.g. --checkpoint resnet50=r50.pt). Classes: the project's, in order.")
_RUN = [click.option("--image-size", type=int, default=None,
                     help="Input size for --checkpoint pools [default: 224]."),
        click.option("--batch-size", default=256, show_default=True, help="Images per forward pass."),
        click.option("--workers", "num_workers", default=2, show_default=True,
                     help="DataLoader processes decoding images."),
        click.option("--device", default=None, help="cpu or cuda (default: cuda when available)."),
        click.option("--threads", type=int, default=None,
                     help="torch CPU threads (default: one per core; 1 is faster on a busy machine)."),
        click.option("--no-verify", is_flag=True,
                     help="Score image files that changed since import instead of stopping.")]


_REFERENCE = click.option(
    "--reference", "references", multiple=True, metavar="NAME",
    help="An annotator whose labels are a reference (compared against, not a vote); repeat for "
         "more. Added to the ones labkit finds (a dataset's labels a simulation drew from).")


def _delivery(p, references: tuple[str, ...]):
    """The project's delivered labels (the definition every labkit view uses)."""
    from labkit.models.pool.labels import project_delivery

    try:
        return project_delivery(p, references=list(references))
    except ValueError as exc:
        raise user_error(exc) from exc


def _run_options(fn):
    for opt in reversed(_RUN):
        fn = opt(fn)
    return fn


def _csv(text: str, cast=str, what: str = "value") -> list:
    try:
        return [cast(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated {what}s, got {text!r}") from None


def _pool(p, name: str, checkpoints: tuple[str, ...], image_size: int | None):
    from labkit.models.pool import ModelPool

    try:
        if not checkpoints:
            if image_size is not None:
                raise click.UsageError("--image-size applies to --checkpoint pools; a trained pool "
                                       "keeps the size it was trained at")
            return ModelPool.load(p, name)
        specs = []
        for item in checkpoints:
            arch, sep, path = item.partition("=")
            if not sep or not arch or not path:
                raise click.BadParameter(f"expected ARCH=PATH, got {item!r}", param_hint="--checkpoint")
            specs.append({"arch": arch, "checkpoint": path, "name": f"{arch}:{path}"})
        return ModelPool.from_checkpoints(specs, classes=p.classes(), image_size=image_size or 224)
    except (ValueError, FileNotFoundError) as exc:
        raise user_error(exc) from exc


def _predict(pool, p, batch_size, num_workers, device, threads, no_verify, scheduler=None):
    try:
        with dask_client(scheduler) as client:
            return pool.predict(p, batch_size=batch_size, num_workers=num_workers, device=device,
                                threads=threads, verify=not no_verify, client=client)
    except (ValueError, FileNotFoundError) as exc:  # ImageError is a ValueError
        raise user_error(exc) from exc


@click.group("pool", cls=ErrorsGroup)
def pool():
    """Train and run the model pool that scores difficulty and finds label errors."""


@pool.command("train")
@PROJECT
@_NAME
@click.option("--archs", default=None, help="Comma-separated timm architectures "
              "[default: resnet18,resnet10t,ghostnet_100].")
@click.option("--fractions", default=None, help="Comma-separated training fractions [default: 0.25,0.5,1].")
@click.option("--folds", default=5, show_default=True, help="Cross-fitting folds.")
@click.option("--image-size", default=32, show_default=True, help="Input size in pixels.")
@click.option("--epochs", default=10, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=5e-3, show_default=True, help="Peak learning rate (AdamW, one-cycle).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default=None, help="cpu or cuda (default: cuda when available).")
@click.option("--workers", "num_workers", default=2, show_default=True,
              help="DataLoader processes decoding images.")
@click.option("--jobs", default=1, show_default=True,
              help="CPU only: models trained at once, one process and one thread each "
                   "(the number of cores is usually fastest).")
@click.option("--threads", type=int, default=None,
              help="torch CPU threads with --jobs 1 (default: one per core).")
@click.option("--overwrite", is_flag=True, help="Replace a pool of this name trained differently.")
@_REFERENCE
@SCHEDULER
def train(project, name, archs, fractions, folds, image_size, epochs, batch_size, lr, seed, device,
          num_workers, jobs, threads, overwrite, references, scheduler):
    """Train a cross-fitted pool on the project's delivered labels.

    The delivered label is the stored consensus, else the majority of the annotators (one
    vote each, ties to the class listed first); reference annotators are not votes.
    Resumable: run the same command again after an interruption and finished models are kept.
    With --scheduler each model trains as one task on that Dask cluster (--jobs and
    --workers are unused); the workers must see the project's folder at the same path.
    """
    from labkit.models.pool import ModelPool

    p = open_project(project)
    try:
        delivery = _delivery(p, references)
        with dask_client(scheduler) as client:
            pool_ = ModelPool.train(
                p, labels=delivery.labels, archs=None if archs is None else _csv(archs, what="architecture"),
                fractions=None if fractions is None else _csv(fractions, float, "fraction"),
                folds=folds, image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                seed=seed, name=name, device=device, num_workers=num_workers, jobs=jobs,
                threads=threads, overwrite=overwrite, client=client)
    except (ValueError, FileNotFoundError) as exc:
        raise user_error(exc) from exc
    finally:
        p.close()
    click.echo(f"trained {pool_!r}\n  on labels: {delivery.describe()}\n  saved in {pool_.home}")


@pool.command("predict")
@PROJECT
@_NAME
@_CHECKPOINT
@_run_options
@SCHEDULER
def predict(project, name, checkpoints, image_size, batch_size, num_workers, device, threads,
            no_verify, scheduler):
    """Score every project image with every pool member; saved in <project>/predictions.

    Saved predictions are reused: only new or changed images are computed. With
    --scheduler the images are scored on that Dask cluster, whose workers must see the
    project's images and the pool's weights at the same paths.
    """
    p = open_project(project)
    try:
        pool_ = _pool(p, name, checkpoints, image_size)
        pred = _predict(pool_, p, batch_size, num_workers, device, threads, no_verify, scheduler)
    finally:
        p.close()
    prov = pred.provenance
    M, N, K = pred.shape
    click.echo(f"{N} images x {M} models x {K} classes: computed {prov['computed']}, reused "
               f"{prov['reused']}\n  saved in {prov['saved_to']}")


@click.command("issues", cls=ErrorsCommand)
@PROJECT
@_NAME
@_CHECKPOINT
@click.option("--top", default=20, show_default=True, help="How many candidates to print (0: all).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write every candidate to this CSV file.")
@click.option("--candidates", type=click.Choice(["both", "either", "cleanlab", "x_perplexity"]),
              default="either", show_default=True, help="Which flags make a candidate.")
@click.option("--x-threshold", default=0.8, show_default=True,
              help="Share of models voting against the label that makes an X-candidate.")
@_REFERENCE
@_run_options
@SCHEDULER
def issues(project, name, checkpoints, top, csv_path, candidates, x_threshold, references, image_size,
           batch_size, num_workers, device, threads, no_verify, scheduler):
    """List label-error candidates: confident learning (cleanlab) and X-perplexity.

    Uses the pool's saved predictions (computing what is missing) and the project's
    delivered labels: the stored consensus, else the majority of the annotators (one vote
    each, ties to the class listed first), reference annotators not voting, as in the
    audit report. Best candidates first, with the reason.
    """
    import pandas as pd

    from labkit.models.pool import project_label_issues

    p = open_project(project)
    try:
        pool_ = _pool(p, name, checkpoints, image_size)
        pred = _predict(pool_, p, batch_size, num_workers, device, threads, no_verify, scheduler)
        delivery = _delivery(p, references)
        try:
            found = project_label_issues(p, pred, labels=delivery.labels, candidates=candidates,
                                         x_threshold=x_threshold)
        except ValueError as exc:
            raise user_error(exc) from exc
    finally:
        p.close()
    if csv_path:
        found.to_csv(csv_path)
    n_labeled = int((pred.fold >= 0).sum()) if checkpoints == () else None
    click.echo(f"{len(found)} label-error candidate(s) among {pred.shape[1]} images"
               + (f" ({n_labeled} cross-fitted)" if n_labeled is not None else "")
               + (f"; all written to {csv_path}" if csv_path else ""))
    click.echo(f"  given label: {delivery.describe()}")
    if not len(found):
        return
    shown = found if top == 0 else found.head(top)
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        for image, r in shown.iterrows():
            click.echo(f"  image {image:<6} {str(r.path):<40} given {r.given_label!s:<8} -> "
                       f"{r.suggested_label!s:<8} score {r.score:.2f}\n      {r.reason}")
