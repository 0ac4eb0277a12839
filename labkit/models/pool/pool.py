"""``ModelPool``: a population of timm classifiers that scores images out of sample.

A pool is M *members*; each member is one timm architecture with one set of weights,
or, for a pool trained by labkit, one weight file per cross-fitting fold. Build one from
your checkpoints (:meth:`ModelPool.from_checkpoints`), train one on a project's own
labels (:meth:`ModelPool.train`, the embedded default), or reopen a trained one
(:meth:`ModelPool.load`). :meth:`ModelPool.predict` returns ``probs`` of shape
``(M, N, K)`` and saves them in the project, so asking again costs only the hashing.

References
----------
.. [1] N. L. Zhang, W. Xie, Z. Lin, G. Dong, X.-H. Li, C. C. Cao, Y. Wang. "Example
   Perplexity". arXiv:2203.08813, 2022 (the pool: varying architectures and varying
   training-set sizes).
.. [2] V. Chernozhukov et al. "Double/debiased machine learning for treatment and
   structural parameters". The Econometrics Journal 21(1), 2018 (cross-fitting).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from labkit.store.protocol import ProjectLike

from .inference import predict
from .members import (
    PoolMember,
    PoolPredictions,
    check_classes,
    check_size,
    folds_digest,
    pool_id,
    versions,
)
from .training import DEFAULT_ARCHS, DEFAULT_FRACTIONS, train_pool

__all__ = ["DEFAULT_ARCHS", "DEFAULT_FRACTIONS", "ModelPool", "PoolMember", "PoolPredictions"]


class ModelPool:
    """A pool of timm classifiers; see the module docstring and the three constructors.

    Attributes
    ----------
    members : tuple of PoolMember
    classes : list of str
        The K classes, in the order of the probabilities' last axis.
    image_size : int
        Every image is resized (squashed) to ``image_size`` x ``image_size``.
    home : Path or None
        The folder of a trained pool (``<project>/pool/<name>``).
    """

    def __init__(self, members: Sequence[PoolMember], *, classes: Sequence[str], image_size: int,
                 folds: tuple[np.ndarray, np.ndarray] | None = None, home: Path | None = None,
                 training: dict | None = None):
        self.members = tuple(members)
        self.classes = list(classes)
        self.image_size = int(image_size)
        self.home = None if home is None else Path(home)
        self.training = training
        if folds is not None:
            order = np.argsort(folds[0], kind="stable")
            folds = (np.asarray(folds[0])[order], np.asarray(folds[1], np.int64)[order])
        self._folds = folds
        self._models: dict[str, list] = {}

    # ------------------------------------------------------------- description --
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    @property
    def n_folds(self) -> int:
        return len(self.members[0].weights)

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        kind = f"trained, {self.n_folds} folds" if self._folds is not None else "checkpoints"
        return (f"ModelPool({len(self)} members: {', '.join(self.names)}; {len(self.classes)} classes; "
                f"{self.image_size} px; {kind})")

    def _folds_digest(self) -> str | None:
        return None if self._folds is None else folds_digest(*self._folds)

    def manifest(self) -> dict:
        """What identifies the pool (JSON-ready): members with checkpoint hashes, classes, folds."""
        return {"members": [asdict(m) for m in self.members], "classes": self.classes,
                "image_size": self.image_size, "folds_sha256": self._folds_digest(),
                "training": self.training, **versions()}

    @property
    def id(self) -> str:
        """16 hex digits naming the pool's saved predictions; changes with any checkpoint."""
        return pool_id(self.members, self.classes, self.image_size, self._folds_digest())

    def fold_of(self, keys: np.ndarray) -> np.ndarray:
        """Cross-fitting fold of each image sha256; -1 where no model trained on it."""
        keys = np.asarray(keys)
        if self._folds is None or not len(keys):
            return np.full(len(keys), -1, np.int64)
        sk, sf = self._folds
        at = np.clip(np.searchsorted(sk, keys), 0, len(sk) - 1)
        return np.where(sk[at] == keys, sf[at], -1)

    # ------------------------------------------------------------- constructors --
    @classmethod
    def from_checkpoints(cls, specs: Sequence[Any], *, classes: Sequence[str],
                         image_size: int = 224) -> ModelPool:
        """A pool of your own timm checkpoints, any number.

        Parameters
        ----------
        specs : sequence of dict or (arch, path) tuples
            One per member: ``{"arch": "resnet50", "checkpoint": "r50.pt"}``, optionally
            with ``"name"`` (default: the arch; names must be unique), ``"mean"`` and
            ``"std"`` (default: timm's for the arch). A checkpoint is a ``state_dict``
            (or a dict holding one under ``"state_dict"`` or ``"model"``, as timm's
            training script saves) for ``timm.create_model(arch, num_classes=K)``; it is
            loaded with ``weights_only=True`` when first needed.
        classes : sequence of str
            The K classes, in the order of the models' outputs.
        image_size : int, default 224
            Input size; images are resized to ``image_size`` x ``image_size``.

        The pool cannot know what the checkpoints were trained on: audit labels with it
        only on images the models never saw.

        Examples
        --------
        >>> import tempfile, numpy as np, timm, torch
        >>> folder = tempfile.mkdtemp()
        >>> model = timm.create_model("test_resnet", pretrained=False, num_classes=3)
        >>> torch.save(model.state_dict(), f"{folder}/mine.pt")
        >>> pool = ModelPool.from_checkpoints([("test_resnet", f"{folder}/mine.pt")],
        ...                                   classes=["cat", "dog", "fox"], image_size=32)
        >>> images = np.zeros((5, 40, 60, 3), np.uint8)  # or image paths, or a Project
        >>> predictions = pool.predict(images, num_workers=0, progress=False)
        >>> predictions.shape, predictions.models
        ((1, 5, 3), ('test_resnet',))
        """
        from labkit._util.hashing import sha256_file

        from . import _torch

        if isinstance(specs, (str, dict)) or not len(specs):
            raise ValueError("specs must be a non-empty list of {'arch': ..., 'checkpoint': ...} "
                             "dicts or (arch, checkpoint) pairs")
        classes = check_classes(classes)
        members = []
        for i, spec in enumerate(specs):
            if isinstance(spec, (tuple, list)) and len(spec) == 2:
                spec = {"arch": spec[0], "checkpoint": spec[1]}
            if not isinstance(spec, dict) or "arch" not in spec or "checkpoint" not in spec:
                raise ValueError(f"specs[{i}] is {spec!r}; expected a dict with 'arch' and "
                                 "'checkpoint' (optional 'name', 'mean', 'std') or an (arch, path) pair")
            extra = set(spec) - {"arch", "checkpoint", "name", "mean", "std"}
            if extra:
                raise ValueError(f"specs[{i}] has unknown keys {sorted(extra)}; expected arch, "
                                 "checkpoint, name, mean, std")
            arch = _torch.check_arch(spec["arch"])
            path = Path(spec["checkpoint"])
            if not path.is_file():
                raise FileNotFoundError(f"specs[{i}]: checkpoint {path} does not exist")
            mean, std = _torch.default_norm(arch)
            members.append(PoolMember(
                name=str(spec.get("name", arch)), arch=arch, weights=(str(path.resolve()),),
                sha256=(sha256_file(path),), mean=tuple(map(float, spec.get("mean", mean))),
                std=tuple(map(float, spec.get("std", std)))))
        names = [m.name for m in members]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"member names must be unique, but {dup} repeat; give each spec a 'name'")
        return cls(members, classes=classes, image_size=check_size(image_size))

    @classmethod
    def train(cls, project: ProjectLike, *, labels: Any = None, archs: Sequence[str] | None = None,
              fractions: Sequence[float] | None = None, folds: int = 5, image_size: int = 32,
              epochs: int = 10, batch_size: int = 32, lr: float = 5e-3, seed: int = 0,
              name: str = "default", device: Any = None, num_workers: int = 2, jobs: int = 1,
              threads: int | None = None, progress: bool = True,
              overwrite: bool = False, client: Any = None, ship_images: bool = False) -> ModelPool:
        """Train the paper's population on the project's labeled images, with cross-fitting.

        Every combination of architecture and training fraction is a member; each member is
        ``folds`` models, one per cross-fitting fold, trained from scratch (nothing is
        downloaded) on a stratified fraction of the other folds, so every labeled image is
        scored only by models that never trained on it. See :mod:`labkit.models.pool.training`
        for the files it writes. Resumable: the same call after an interruption keeps the
        finished models.

        Parameters
        ----------
        project : labkit.Project
        labels : pandas.Series, optional
            Class names indexed by image id. Default (None): :func:`reference_labels`, the
            majority of each image's image-level ``label`` annotations over all annotators
            (ties: the class listed first). Images without a label are not trained on (they
            are still scored by :meth:`ModelPool.predict`, by all folds' models averaged).
        archs : sequence of str, default ``DEFAULT_ARCHS``
            timm architectures, created with ``pretrained=False`` (nothing is downloaded).
        fractions : sequence of float in (0, 1], default ``DEFAULT_FRACTIONS``
            Training-set sizes, as shares of the other folds (stratified, nested).
        folds : int, default 5
            Cross-fitting folds (>= 2). Each model trains on ``(folds - 1) / folds`` of
            the labeled images, times its fraction.
        image_size : int, default 32
            Images are squashed to this many pixels square (timm's CNNs accept 16 px and up).
        epochs, batch_size, lr : training schedule (AdamW, one-cycle, label smoothing 0.1).
            Models learn from scratch, so what counts is the number of steps: a warning
            says when a member gets fewer than 100 (small projects: lower ``batch_size``).
        seed : int
            Folds, subsets, initialisation and batches all follow from it.
        name : str, default "default"
            The pool's folder, ``<project>/pool/<name>``.
        device : str or torch.device, optional
            Default: CUDA when available, else the CPU.
        num_workers : int, default 2
            DataLoader processes decoding the images (once, before training).
        jobs : int, default 1
            On the CPU, train this many models at once, each in its own process with one
            thread. Small inputs parallelise poorly inside one model, and a multi-threaded
            model slows down sharply when other programs compete for the cores (6-10x seen
            on a busy 2-core machine), so ``jobs`` equal to the number of cores is usually
            fastest. Ignored on CUDA (one model at a time on the GPU).
        threads : int, optional
            torch's CPU threads when models train in this process (``jobs=1``); ``None``
            leaves torch's setting (one per core).
        progress : bool, default True
            Show a tqdm progress bar (images seen, over all models and epochs).
        overwrite : bool, default False
            A pool of this name trained with other options or labels is an error unless
            ``overwrite=True``, which deletes it. With the same options and labels, finished
            models are reused (resume).
        client : distributed.Client, optional
            Train on this Dask cluster instead: each model is one task, the workers decode
            the images (and check their hashes) and write the weights to the pool's folder,
            which the client re-hashes; ``jobs`` and ``num_workers`` are then unused and
            ``threads`` is torch's threads per task (default: the worker's, which Dask sets
            to 1). The models equal the local path's on the same device (see
            ``docs/scale.md``). Resumable as above.
        ship_images : bool, default False
            With a ``client`` whose workers cannot see the project's folder: the client reads
            the images and sends their bytes, and writes the weights the workers return.

        Returns
        -------
        ModelPool
            ``len(archs) * len(fractions)`` members named ``"<arch>@<fraction>"``.

        Examples
        --------
        Eight small models on a project's labeled images, two at a time, then the
        label-error candidates (``tests/pool`` runs this on real digits)::

            pool = ModelPool.train(project, archs=["resnet18", "resnet10t"],
                                   fractions=[0.5, 1.0], folds=2, image_size=16, jobs=2)
            predictions = pool.predict(project)   # (4, N, K), saved in the project
            project_label_issues(project, predictions).head()
        """
        return train_pool(cls, project, labels=labels, archs=archs, fractions=fractions, folds=folds,
                          image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                          seed=seed, name=name, device=device, num_workers=num_workers, jobs=jobs,
                          threads=threads, progress=progress, overwrite=overwrite, client=client,
                          ship_images=ship_images)

    @classmethod
    def load(cls, project: ProjectLike | str | Path, name: str = "default") -> ModelPool:
        """Reopen the pool trained as ``name`` in ``project`` (a Project or its folder)."""
        root = Path(project.root if hasattr(project, "root") else project)
        home = root / "pool" / name
        path = home / "pool.json"
        if not path.exists():
            have = sorted(p.parent.name for p in (root / "pool").glob("*/pool.json"))
            raise FileNotFoundError(f"no pool named {name!r} in {root} (trained pools: {have or 'none'}); "
                                    "train one with ModelPool.train(project) or "
                                    f"`labkit pool train --project {root}`")
        data = json.loads(path.read_text())
        members = [PoolMember(**{**m, "weights": tuple(str(home / w) for w in m["weights"]),
                                 "sha256": tuple(m["sha256"]), "mean": tuple(m["mean"]),
                                 "std": tuple(m["std"])}) for m in data["members"]]
        with np.load(home / "folds.npz", allow_pickle=False) as z:
            folds = (z["sha256"], z["fold"])
        pool = cls(members, classes=data["classes"], image_size=data["image_size"], folds=folds,
                   home=home, training=data.get("training"))
        if pool._folds_digest() != data["folds_sha256"]:
            raise ValueError(f"{home / 'folds.npz'} does not match {path}; retrain the pool "
                             "(ModelPool.train(..., overwrite=True))")
        return pool

    # ---------------------------------------------------------------- predict --
    def predict(self, images: Any, *, batch_size: int = 256, num_workers: int = 2,
                device: Any = None, threads: int | None = None, verify: bool = True,
                cache: bool = True, cache_dir: str | Path | None = None, shard_size: int = 2048,
                progress: bool = True, client: Any = None, ship_images: bool = False) -> PoolPredictions:
        """Class probabilities of every member for every image: ``probs`` of shape (M, N, K).

        Parameters
        ----------
        images : labkit.Project, sequence of paths, or sequence of (H, W, 3) uint8 arrays
            A project means all its images, in the order of ``project.images()``.
        batch_size : int, default 256
            Images per forward pass.
        num_workers : int, default 2
            DataLoader processes decoding images (0: decode in this process).
        device : str or torch.device, optional
            Default: CUDA when available, else the CPU. On CUDA inputs are pinned and
            forward passes run under ``torch.autocast("cuda")``.
        threads : int, optional
            torch's CPU threads while the models run (``None``: torch's setting, one per
            core). On a machine where other programs keep the cores busy, 1 can be several
            times faster for small inputs: threads of one operation wait on each other.
        verify : bool, default True
            For a project, a file whose bytes no longer match its import hash raises
            :class:`labkit.ImageError`; ``False`` scores the current bytes instead.
        cache : bool, default True
            Reuse and save predictions. They live in ``<project>/predictions/<pool id>/``
            (for a project, or for any images given to a pool trained in a project), or
            in ``cache_dir/<pool id>/``; images given as paths or arrays to a checkpoint
            pool without ``cache_dir`` are not saved.
        shard_size : int, default 2048
            Images per saved shard: an interrupted run loses at most this many.
        progress : bool, default True
            Show a tqdm progress bar.
        client : distributed.Client, optional
            Score on this Dask cluster: the workers hash the files, then one task decodes
            each batch of ``batch_size`` images and one scores it per member (the routing
            above unchanged); the client saves the shards. Equal to the local path's
            probabilities to float rounding (1e-6). ``num_workers`` is unused.
        ship_images : bool, default False
            With a ``client`` whose workers cannot see the files: the client hashes and reads
            the images and sends their bytes (and each weight file once to every worker).

        Returns
        -------
        PoolPredictions
            ``probs`` (M, N, K) float32 in the order of the images, with ids, folds and
            provenance. For a trained pool, an image it trained on is scored only by the
            members' models of the fold that held it out; any other image by the mean of
            all folds' models. A saved image is reused when its bytes' sha256 is
            unchanged, so results reload identically and a changed image is scored again.
        """
        return predict(self, images, batch_size=batch_size, num_workers=num_workers, device=device,
                       threads=threads, verify=verify, cache=cache, cache_dir=cache_dir,
                       shard_size=shard_size, progress=progress, client=client, ship_images=ship_images)
