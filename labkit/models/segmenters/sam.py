"""``SamSegmenter``: Segment Anything behind labkit's segmenter protocol, with an embedding cache.

References
----------
Kirillov et al., "Segment Anything", ICCV 2023, arXiv:2304.02643.
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from labkit.models._background import Cancelled, EncoderGate
from labkit.models.embeddings import (
    EmbeddingCache,
    check_key,
    default_cache_dir,
    image_key,
)
from labkit.models.segmenters.base import Segmenter, check_image, check_prompts
from labkit.models.segmenters.sam_onnx import (
    OnnxDecoder,
    onnx_available,
    onnx_prompt,
    upscale_masks,
)

DECODERS = ("auto", "torch", "onnx")
# A foreground set_image waits for a background encoding of the same image that is at
# least this far along, and otherwise takes it over: on two cores a one-thread encoder
# is ~1.6x slower than a two-thread one, so past ~40% waiting is quicker.
_TAKE_OVER_BEFORE = 0.4


def resolve_device(device: Any = None):
    """``torch.device``: the argument, else ``cuda`` when available, else ``cpu``."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def _single_thread_if(condition: bool) -> Iterator[None]:
    """One torch thread for this call when a background encoder holds the other core.

    Measured here: with a background encoder running, the PyTorch decoder on two threads
    took 5-10x longer than on one, as each of its ~hundreds of small parallel ops waits for
    a thread that shares a core with the encoder.
    """
    if not condition:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Job:
    """A background encoding in flight, so the foreground can wait for it or take it over."""

    def __init__(self, total_points: int):
        self.done = threading.Event()
        self.result = None  # float32 embedding, when finished
        self.cancel = False  # the foreground takes the image over: stop
        self.wanted = False  # the foreground waits for the result: ignore pauses
        self.points = 0
        self.total = max(1, total_points)


class SamSegmenter(Segmenter):
    """Segment Anything (``segment_anything.modeling.Sam``) as a labkit segmenter.

    ``predict`` gives the same masks and scores as ``segment_anything.SamPredictor`` for
    the same model, image and prompts (with ``decoder="torch"``; the ONNX decoder agrees
    to a mask IoU >= 0.99). Embeddings are cached in memory (float32, the last few images)
    and on disk (float16; see :mod:`labkit.models.embeddings`), so setting an image a second
    time never runs the encoder.

    Parameters
    ----------
    sam : segment_anything.modeling.Sam
        An already-built model (e.g. from a checkpoint, or a tiny random one in tests).
    model_id : str, optional
        Stable id of the architecture and weights; default ``"<name>-<hash of the weights>"``.
    name : str
        Registry name recorded in provenance.
    device : str or torch.device, optional
        Default ``cuda`` when available, else ``cpu``.
    cache_dir : path, optional
        Embedding cache folder (default :func:`~labkit.models.embeddings.default_cache_dir`).
    decoder : {"auto", "torch", "onnx"}
        Prompt decoder. ``"auto"`` picks ONNX Runtime on CPU when ``onnx`` and ``onnxruntime``
        are installed (about 2x faster on CPU, see ``benchmarks/bench_segmenter_latency.py``)
        and PyTorch otherwise (always on a GPU).
    onnx_threads : int, optional
        onnxruntime threads for the ONNX decoder (default: all cores).
    memory_items : int
        How many float32 embeddings to keep in memory.
    """

    has_embeddings = True

    def __init__(self, sam, *, model_id: str | None = None, name: str = "sam", device: Any = None,
                 cache_dir: str | Path | None = None, decoder: str = "auto", onnx_threads: int | None = None,
                 memory_items: int = 4):
        from segment_anything import SamPredictor
        from segment_anything.modeling import Sam

        if not isinstance(sam, Sam):
            raise TypeError(f"sam must be a segment_anything.modeling.Sam, got {type(sam).__name__}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.device = resolve_device(device)
        self.sam = sam.to(self.device).eval()
        self.name = name
        if model_id is None:
            from labkit.models.segmenters.sam_build import module_sha256

            model_id = f"{name}-{module_sha256(self.sam)[:16]}"
        self.model_id = check_key(model_id, "model_id")
        pe = self.sam.prompt_encoder
        self.embedding_shape = (1, pe.embed_dim, *pe.image_embedding_size)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache = EmbeddingCache(self.cache_dir, self.model_id, shape=self.embedding_shape)
        self._predictor = SamPredictor(self.sam)
        self.img_size = int(self.sam.image_encoder.img_size)
        self._onnx_threads = onnx_threads
        self._onnx: OnnxDecoder | None = None
        self.decoder = decoder
        if decoder == "auto":
            self.decoder = "onnx" if self.device.type == "cpu" and onnx_available() else "torch"
        if self.decoder == "onnx":
            try:
                self._onnx_decoder()  # export now rather than on the first prompt
            except Exception as exc:
                if decoder == "onnx":
                    raise
                warnings.warn(f"the ONNX decoder is unavailable ({type(exc).__name__}: {exc}); using the "
                              "PyTorch decoder", RuntimeWarning, stacklevel=2)
                self.decoder = "torch"
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._memory_items = max(1, int(memory_items))
        self._lock = threading.RLock()  # foreground state (current image)
        self._jobs_lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self.gate = EncoderGate()
        self.gate.install(self.sam.image_encoder.blocks)
        self._yield_points = sum(1 for _ in self.sam.image_encoder.blocks.modules())
        self.encoder_calls = 0  # how many times the image encoder ran (diagnostics, tests)
        self.key: str | None = None
        self.image_shape: tuple[int, int] | None = None
        self._emb_np: np.ndarray | None = None

    @property
    def predictor(self) -> Any:
        """The ``segment_anything.SamPredictor`` holding the current image's embedding (:meth:`set_image`).

        For segment-anything's own tools over labkit's cached embeddings, e.g. its
        ``SamAutomaticMaskGenerator`` (:mod:`labkit.models.prelabelers.masks`).
        """
        return self._predictor

    # ---------------------------------------------------------------- encoding --
    def _encode(self, image: np.ndarray):
        """Float32 embedding ``(1, C, E, E)``, computed exactly as ``SamPredictor.set_image`` does."""
        import torch

        if self.sam.image_format != "RGB":
            image = image[..., ::-1]
        x = self._predictor.transform.apply_image(image)
        x = torch.as_tensor(x, device=self.device).permute(2, 0, 1).contiguous()[None, :, :, :]
        with torch.no_grad():
            features = self.sam.image_encoder(self.sam.preprocess(x))
        with self._jobs_lock:
            self.encoder_calls += 1
        return features

    def _remember(self, key: str, emb) -> None:
        self._memory[key] = emb
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_items:
            self._memory.popitem(last=False)

    def is_cached(self, key: str) -> bool:
        return key in self._memory or key in self.cache

    def precompute(self, image: np.ndarray, *, key: str | None = None, background: bool = False,
                   check=None) -> bool:
        """Encode ``image`` into the disk cache unless it is there; True when the encoder ran.

        With ``background=True`` the encoder yields to foreground prompts (see
        :mod:`labkit.models._background`), ``check()`` runs at each yield point (it may raise
        to stop), and a foreground ``set_image`` of the same image waits for it or takes it over.
        """
        image = check_image(image)
        key = check_key(key) if key is not None else image_key(image)
        if self.is_cached(key):
            return False
        if not background:
            with self.gate.foreground():
                self.cache.save(key, self._encode(image))
            return True
        job = _Job(self._yield_points)
        with self._jobs_lock:
            if key in self._jobs:
                return False
            self._jobs[key] = job

        def step():
            job.points += 1
            if job.cancel:
                raise Cancelled(key)
            if check is not None and not job.wanted:
                check()

        try:
            with self.gate.background(step):
                emb = self._encode(image)
            self.cache.save(key, emb)
            job.result = emb
            return True
        except Cancelled:
            if job.cancel:  # taken over by the foreground
                return False
            raise
        finally:
            with self._jobs_lock:
                self._jobs.pop(key, None)
            job.done.set()

    def is_awaited(self, key: str) -> bool:
        """True while a foreground ``set_image`` waits for the background encoding of ``key``."""
        job = self._jobs.get(key)
        return job is not None and job.wanted

    def _from_job(self, key: str):
        """Wait for (or take over) a background encoding of ``key``; its embedding or None."""
        with self._jobs_lock:
            job = self._jobs.get(key)
        if job is None:
            return None
        if job.points / job.total < _TAKE_OVER_BEFORE:
            job.cancel = True
        else:
            job.wanted = True
        job.done.wait()
        return job.result

    # --------------------------------------------------------------- protocol --
    def set_image(self, image: np.ndarray, *, key: str | None = None) -> None:
        """Make ``image`` ((H, W, 3) uint8 RGB) current, encoding it only if no cache has it.

        ``key`` is the image's content hash; pass the project's ``sha256`` for project
        images (see :func:`~labkit.models.project_image`), else the pixels are hashed.
        """
        import torch

        image = check_image(image)
        key = check_key(key) if key is not None else image_key(image)
        with self._lock:
            if key == self.key and self.image_shape == image.shape[:2]:
                return
            emb = self._memory.get(key)
            if emb is None:
                emb = self._from_job(key)
            if emb is None:
                arr = self.cache.load(key)
                if arr is not None:
                    emb = torch.from_numpy(arr.astype(np.float32)).to(self.device)
            if emb is None:
                with self.gate.foreground():
                    emb = self._encode(image)
                self.cache.save(key, emb)
            self._remember(key, emb)
            p = self._predictor
            p.reset_image()
            p.original_size = tuple(image.shape[:2])
            p.input_size = p.transform.get_preprocess_shape(image.shape[0], image.shape[1], self.img_size)
            p.features = emb
            p.is_image_set = True
            self._emb_np = emb.detach().to("cpu").numpy() if self.decoder == "onnx" else None
            self.key = key
            self.image_shape = tuple(image.shape[:2])

    def predict(self, *, box: Any = None, points: Any = None, point_labels: Any = None,
                multimask: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(C, H, W)`` bool and predicted IoU scores ``(C,)``: C = 3 with ``multimask``, else 1.

        Parameters
        ----------
        box : array-like of 4 numbers, optional
            XYXY pixels.
        points : array-like of shape (P, 2), optional
            x, y pixels.
        point_labels : array-like of shape (P,), optional
            1 = object, 0 = background.
        multimask : bool
            Three candidate masks (best for a single ambiguous click) or one.
        """
        box, points, labels = check_prompts(box, points, point_labels)
        with self._lock:
            if self.key is None:
                raise RuntimeError("no image is set: call set_image(image) before predict(...)")
            with self.gate.foreground():
                if self.decoder == "onnx":
                    return self._predict_onnx(box, points, labels, bool(multimask))
                with _single_thread_if(bool(self._jobs) and self.device.type == "cpu"):
                    masks, scores, _ = self._predictor.predict(point_coords=points, point_labels=labels, box=box,
                                                               multimask_output=bool(multimask))
        return masks.astype(bool, copy=False), scores

    # ------------------------------------------------------------------- ONNX --
    def _onnx_decoder(self) -> OnnxDecoder:
        if self._onnx is None:
            self._onnx = OnnxDecoder(self.sam, self.cache_dir / "onnx" / f"{self.model_id}.onnx",
                                     threads=self._onnx_threads)
        return self._onnx

    def _predict_onnx(self, box, points, labels, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        p = self._predictor
        size = p.original_size
        pts = p.transform.apply_coords(points, size) if points is not None else None
        bx = p.transform.apply_boxes(box, size) if box is not None else None
        coords, labs = onnx_prompt(pts, labels, bx)
        if self._emb_np is None:
            raise RuntimeError("the ONNX decoder needs the image's embedding as an array; call set_image first")
        low, iou = self._onnx_decoder()(self._emb_np, coords, labs)
        keep = slice(1, None) if multimask else slice(0, 1)
        logits = upscale_masks(low[keep], img_size=self.img_size, input_size=p.input_size, original_size=size)
        return logits > self.sam.mask_threshold, iou[keep]
