"""Offline face metrics with dlib's pretrained models: detection rate, identity kept, Frechet face distance.

Needs the optional extra ``faces`` (``pip install 'facevae[faces]'``: the ``dlib-bin`` and
``face-recognition-models`` packages). The three models ship inside those packages; nothing is
downloaded:

- the HOG + linear SVM frontal-face detector (``dlib.get_frontal_face_detector``);
- the 5-point landmark model ``shape_predictor_5_face_landmarks.dat`` (eye corners and nose base),
  used only to align the face chip (the 68-point model is not used: it carries a non-commercial
  licence);
- the 128-D face recognition ResNet ``dlib_face_recognition_resnet_model_v1.dat`` (99.38% on LFW;
  two faces of the same person are at Euclidean distance < 0.6, dlib's threshold).

Every image is first resized (Lanczos) so that its longer side is ``DLIB_SIZE`` = 256 px: at 64 px a
face is below the HOG detector's 80 x 80 window. When several faces are found the largest box is used.

Images: float arrays in [0, 1], shape (N, H, W, 3); grey images (N, H, W) or (N, H, W, 1) have their
channel repeated. Every metric also accepts a :class:`FaceAnalysis` computed once with
:func:`analyse_faces`, so that a reference set is not analysed again for each comparison.

Speed: the 128-D network dominates (about 0.14 s per face on one core of this project's 2-core machine;
the dlib-bin wheel is built without BLAS), detection and landmarks take about 0.01 s: 3-7 images/s in
all, as measured by ``benchmarks/face_calibration.py``. Sets of 200 images or more show a progress bar.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facevae.analysis.frechet import FrechetResult, frechet_distance_of_features

__all__ = [
    "DLIB_SIZE",
    "SAME_PERSON_DISTANCE",
    "FACES_EXTRA",
    "FaceMetricsUnavailable",
    "FaceAnalysis",
    "DetectionRate",
    "IdentityKept",
    "FaceAnalyzer",
    "face_analyzer",
    "analyse_faces",
    "detection_rate",
    "identity_kept",
    "frechet_face_distance",
]

DLIB_SIZE = 256
SAME_PERSON_DISTANCE = 0.6
FACES_EXTRA = "pip install 'facevae[faces]'"
DESCRIPTOR_SIZE = 128
_PROGRESS_MIN = 200  # show a progress bar for sets at least this large (when progress=None)


class FaceMetricsUnavailable(ImportError):
    """dlib or its packaged face models are not installed."""


def _load_dlib():
    """Import dlib and locate the packaged model files, or raise a one-line FaceMetricsUnavailable."""
    try:
        import dlib
    except ImportError:
        raise FaceMetricsUnavailable(f"face metrics need dlib (not installed): {FACES_EXTRA}") from None
    # Located without importing the package: its __init__ imports pkg_resources, which newer setuptools lack.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceMetricsUnavailable(f"face metrics need the face-recognition-models package (not installed): {FACES_EXTRA}")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    paths = {name: os.path.join(folder, name) for name in
             ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")}
    for path in paths.values():
        if not os.path.isfile(path):
            raise FaceMetricsUnavailable(f"dlib face model {path} is missing; reinstall with {FACES_EXTRA}")
    return dlib, paths


@dataclass(frozen=True)
class FaceAnalysis:
    """Per-image result of the face pipeline.

    detected: (N,) bool, a frontal face was found. descriptors: (N, 128) float64, the face
    recognition embedding of the largest detected face (unit-free, roughly unit norm), NaN rows
    where no face was detected.
    """

    detected: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.detected.shape[0])

    def subset(self, index) -> "FaceAnalysis":
        """The analysis of images[index] (a boolean mask or integer indices)."""
        return FaceAnalysis(self.detected[index], self.descriptors[index])


@dataclass(frozen=True)
class DetectionRate:
    """rate = detected / count (0 for an empty set)."""

    rate: float
    detected: int
    count: int


@dataclass(frozen=True)
class IdentityKept:
    """Identity kept over paired images; see :func:`identity_kept` for the definitions.

    distances: (N,) descriptor distance of each pair, NaN where either face was not detected.
    """

    kept: float
    median_distance: float
    kept_of_detected: float
    pairs: int
    both_detected: int
    threshold: float
    distances: np.ndarray


def _as_uint8_rgb(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3) -> uint8 (N, H, W, 3)."""
    from facevae.data.images import check_float_images

    x = check_float_images(images)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _resize_for_dlib(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 with its longer side = size (Lanczos), C-contiguous as dlib needs."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    if new != (w, h):
        image = np.asarray(Image.fromarray(image).resize(new, Image.LANCZOS))
    return np.ascontiguousarray(image)


class FaceAnalyzer:
    """Holds the three dlib models; :meth:`analyse` maps images to a :class:`FaceAnalysis`."""

    def __init__(self, size: int = DLIB_SIZE):
        if size < 80:
            raise ValueError(f"size must be at least 80 px (the HOG detector's window); received size={size}")
        dlib, paths = _load_dlib()
        self._dlib = dlib
        self.size = int(size)
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(paths["shape_predictor_5_face_landmarks.dat"])
        self.recognizer = dlib.face_recognition_model_v1(paths["dlib_face_recognition_resnet_model_v1.dat"])

    def _largest_face(self, image: np.ndarray):
        boxes = self.detector(image, 0)
        if len(boxes) == 0:
            return None
        return max(boxes, key=lambda box: box.area())

    def analyse(self, images: np.ndarray, batch_size: int = 32, progress: bool | None = None) -> FaceAnalysis:
        """Detect, align and describe the largest face of each image (see the module docstring).

        images: float (N, H, W, 3) in [0, 1]. The 128-D descriptors are computed in batches of
        ``batch_size`` images with dlib's batched call. progress: a tqdm bar; by default for N >= 200.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; received batch_size={batch_size}")
        pixels = _as_uint8_rgb(images)
        n = pixels.shape[0]
        detected = np.zeros(n, dtype=bool)
        descriptors = np.full((n, DESCRIPTOR_SIZE), np.nan)
        if progress is None:
            progress = n >= _PROGRESS_MIN
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=n, desc="face metrics", unit="img")
        try:
            for start in range(0, n, batch_size):
                batch_images, batch_shapes, batch_index = [], [], []
                for i in range(start, min(n, start + batch_size)):
                    image = _resize_for_dlib(pixels[i], self.size)
                    box = self._largest_face(image)
                    if box is None:
                        continue
                    shapes = self._dlib.full_object_detections()
                    shapes.append(self.landmarks(image, box))
                    batch_images.append(image)
                    batch_shapes.append(shapes)
                    batch_index.append(i)
                if batch_images:
                    vectors = self.recognizer.compute_face_descriptor(batch_images, batch_shapes)
                    for i, per_image in zip(batch_index, vectors):
                        descriptors[i] = np.asarray(per_image[0], dtype=np.float64)
                        detected[i] = True
                if bar is not None:
                    bar.update(min(n, start + batch_size) - start)
        finally:
            if bar is not None:
                bar.close()
        return FaceAnalysis(detected=detected, descriptors=descriptors)


@functools.lru_cache(maxsize=2)
def face_analyzer(size: int = DLIB_SIZE) -> FaceAnalyzer:
    """A shared :class:`FaceAnalyzer` (the models load once per process, about a second)."""
    return FaceAnalyzer(size)


def analyse_faces(images: np.ndarray | FaceAnalysis, batch_size: int = 32,
                  progress: bool | None = None) -> FaceAnalysis:
    """:meth:`FaceAnalyzer.analyse` with the shared analyzer; a FaceAnalysis is returned unchanged."""
    if isinstance(images, FaceAnalysis):
        return images
    return face_analyzer().analyse(images, batch_size=batch_size, progress=progress)


def detection_rate(images: np.ndarray | FaceAnalysis) -> DetectionRate:
    """Face detection rate: the fraction of images in which the HOG detector finds a frontal face.

    rate = #{i : at least one face detected in image i (at 256 px)} / N. Used on prior samples,
    reconstructions and edits: a rate well below that of real faces means images that no longer look
    like a face to a classical detector.
    """
    analysis = analyse_faces(images)
    n = len(analysis)
    found = int(analysis.detected.sum())
    return DetectionRate(rate=found / n if n else 0.0, detected=found, count=n)


def identity_kept(images_a: np.ndarray | FaceAnalysis, images_b: np.ndarray | FaceAnalysis,
                  threshold: float = SAME_PERSON_DISTANCE) -> IdentityKept:
    """Identity kept between paired images a[i], b[i] (e.g. held-out face and its reconstruction).

    d_i = ||f(a_i) - f(b_i)||_2 with f the 128-D dlib face descriptor.

    - kept = #{i : both faces detected and d_i < threshold} / N. A pair where either face is not
      detected counts as NOT kept: a reconstruction in which no face is found has not kept the
      person, and dropping such pairs would reward a model for losing faces altogether.
    - median_distance = median of d_i over the pairs where both faces were detected (NaN if none);
      ``both_detected`` says how many that is.
    - kept_of_detected = kept pairs / both_detected (the rate among pairs that could be compared).

    threshold 0.6 is dlib's same-person threshold for this network.
    """
    a, b = analyse_faces(images_a), analyse_faces(images_b)
    if len(a) != len(b):
        raise ValueError(f"identity_kept compares paired images; received {len(a)} and {len(b)} images")
    both = a.detected & b.detected
    distances = np.full(len(a), np.nan)
    distances[both] = np.linalg.norm(a.descriptors[both] - b.descriptors[both], axis=1)
    kept_count = int(np.sum(distances[both] < threshold))
    n, m = len(a), int(both.sum())
    return IdentityKept(
        kept=kept_count / n if n else 0.0,
        median_distance=float(np.median(distances[both])) if m else float("nan"),
        kept_of_detected=kept_count / m if m else float("nan"),
        pairs=n, both_detected=m, threshold=float(threshold), distances=distances)


def frechet_face_distance(images_a: np.ndarray | FaceAnalysis,
                          images_b: np.ndarray | FaceAnalysis) -> FrechetResult:
    """Frechet face distance: the Frechet distance between the 128-D descriptors of two image sets.

    d^2 = ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with mu, S the mean and covariance
    of the descriptors of the images in which a face was detected (images without a face do not
    enter; the detection rate says how many). The result carries those counts. In squared
    descriptor units (the same-person threshold 0.6 is a distance, so 0.36 is its square).
    Like FID it is biased upwards at small counts, and below 129 faces the covariance is singular
    (handled with the eps offset of :func:`facevae.analysis.frechet.frechet_distance`): compare values
    only at equal counts. Needs at least 2 detected faces per set.
    """
    a, b = analyse_faces(images_a), analyse_faces(images_b)
    for name, analysis in (("images_a", a), ("images_b", b)):
        if analysis.detected.sum() < 2:
            raise ValueError(f"frechet_face_distance needs at least 2 detected faces in {name}; "
                             f"found {int(analysis.detected.sum())} of {len(analysis)}")
    return frechet_distance_of_features(a.descriptors[a.detected], b.descriptors[b.detected])
