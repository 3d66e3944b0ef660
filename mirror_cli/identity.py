"""Same-face score (optional extra ``[identity]``): how far the face in a new stage is from the
face in the user's anchor image, as the Euclidean distance between two 128-d face embeddings.

dlib's CNN face detector finds the face (its HOG detector misses cartoon faces), a 5-point
shape predictor aligns it, and dlib's ResNet embedding describes it; the weights come from the
``face-recognition-models`` package. Images are downscaled first (``EMBED_SIDES``): the CNN
costs about 1.6 s per 512^2 image on one core. A distance past the style's threshold flags the
avatar "identity drift" for a person to look at; it never buys the image again.

Without the extra the score is skipped (``available()`` says why; ``mirror doctor`` shows it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import math
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

EMBED_SIDES = (256, 400)  # px, tried in turn: ~0.4 s, then ~1 s of CPU
EXTRA_HINT = "pip install 'mirror-realm-avatars[identity]' (dlib-bin, face-recognition-models, numpy)"
MODEL_FILES = (
    "mmod_human_face_detector.dat",
    "shape_predictor_5_face_landmarks.dat",
    "dlib_face_recognition_resnet_model_v1.dat",
)


@dataclass(frozen=True)
class IdentityScore:
    distance: float | None  # None: no face found in one of the two images
    threshold: float
    anchor_id: str
    detail: str = ""

    @property
    def drift(self) -> bool:
        return self.distance is not None and self.distance > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift}


def models_dir() -> Path | None:
    """The weights shipped by face-recognition-models, found without importing it (its
    ``__init__`` imports pkg_resources, which new setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def available() -> tuple[bool, str]:
    """(usable, why not / what is used): for the pipeline and for ``doctor``."""
    for module in ("dlib", "numpy"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return False, f"{module} is not installed"
    folder = models_dir()
    if folder is None:
        return False, "face-recognition-models is not installed"
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        return False, f"model file(s) missing in {folder}: {', '.join(missing)}"
    return True, f"dlib CNN detector + ResNet embedding ({folder})"


@functools.cache
def available_once() -> tuple[bool, str]:
    """``available()``, looked up once per process (the pipeline asks for every job)."""
    return available()


class FaceEmbedder:
    """The three dlib models, loaded once per process (about a second), used under a lock:
    dlib's objects are not documented as thread-safe."""

    _instance: FaceEmbedder | None = None
    _instance_lock = threading.Lock()

    def __init__(self, folder: Path) -> None:
        import dlib

        self._detector = dlib.cnn_face_detection_model_v1(str(folder / MODEL_FILES[0]))
        self._shapes = dlib.shape_predictor(str(folder / MODEL_FILES[1]))
        self._net = dlib.face_recognition_model_v1(str(folder / MODEL_FILES[2]))
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, tuple[float, ...] | None] = OrderedDict()

    @classmethod
    def get(cls) -> FaceEmbedder:
        with cls._instance_lock:
            if cls._instance is None:
                folder = models_dir()
                if folder is None:
                    raise RuntimeError("face-recognition-models is not installed")
                cls._instance = FaceEmbedder(folder)
            return cls._instance

    def embed(self, img: Image.Image) -> tuple[float, ...] | None:
        """The face's 128-d embedding, or None when no face is found. Kept by content: the
        same picture (an anchor, a deterministic offline render) is measured once."""
        key = hashlib.sha256(img.tobytes()).hexdigest() + f"{img.size}{img.mode}"
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return self._seen[key]
        emb = self._embed(img)
        with self._lock:
            self._seen[key] = emb
            while len(self._seen) > 512:
                self._seen.popitem(last=False)
        return emb

    def _embed(self, img: Image.Image) -> tuple[float, ...] | None:
        import numpy as np

        rgb = img.convert("RGB")
        for side in EMBED_SIDES:  # the CNN misses some cartoon faces at one scale and finds them at another
            small = rgb.copy()
            small.thumbnail((side, side), Image.Resampling.LANCZOS)
            pixels = np.asarray(small)
            with self._lock:
                faces = self._detector(pixels, 0)
                if faces:
                    best = max(faces, key=lambda f: f.confidence)
                    shape = self._shapes(pixels, best.rect)
                    return tuple(float(v) for v in self._net.compute_face_descriptor(pixels, shape))
        return None

    def embed_bytes(self, data: bytes) -> tuple[float, ...] | None:
        return self.embed(Image.open(io.BytesIO(data)))


def distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def score(anchor: bytes, anchor_id: str, image: Image.Image, threshold: float) -> IdentityScore:
    """Compare a new image with the anchor image's bytes (the extra must be installed)."""
    embedder = FaceEmbedder.get()
    a = embedder.embed_bytes(anchor)
    if a is None:
        return IdentityScore(None, threshold, anchor_id, "no face found in the anchor image")
    b = embedder.embed(image)
    if b is None:
        return IdentityScore(None, threshold, anchor_id, "no face found in the new image")
    return IdentityScore(round(distance(a, b), 4), threshold, anchor_id)
