"""What do the face metrics say about known degradations? Calibration on real held-out FFHQ faces.

    PYTHONPATH=. python benchmarks/face_calibration.py

Reads the FFHQ 1k faces with indices 1000-1100 (the held-out set of the real-face benchmark; 01099 is
missing, so 100 faces) straight from ``../shared/data/ffhq_1k/images256x256/01000/*.jpg``, downscales
them to 64 px (Lanczos), and reports with ``facevae.analysis.face_metrics``:

- the face detection rate of the originals at 64 px (acceptance: >= 95%);
- identity kept and median descriptor distance of the originals against themselves (must be 100%, 0);
- the same for the originals blurred with a Gaussian of sigma 0.8, 1.5 and 2.5 px (at 64 px, per
  channel, reflecting borders), with the PSNR of each blurred set against the originals
  (10 log10(1 / MSE) over all pixels of the set) and the Frechet face distance to the originals, so
  that a reader knows what a given identity-kept figure looks like. Identity kept must fall
  monotonically as the blur grows;
- the same for two kinds of smooth faces without any pixel grid, to show what the seam measures read on content
  alone: the mean image of the training faces 0-999, and the held-out faces projected on the first 50, 100 and
  200 principal components of the training faces (a linear decoder, x_hat = mean + V_k V_k^T (x - mean), clipped
  to [0, 1]; PCA by SVD of the 1,000 training faces at the same size);
- for every row, ``seam_ratio`` (grid lines against all other lines) and ``local_seam_ratio`` (grid lines against
  their neighbours) from ``facevae.analysis.metrics``, grid lines every 16 px.

Writes benchmarks/results/face_calibration.{json,md} and a picture sheet face_calibration.png
(rows: originals, then each blur; 10 faces), and prints the table and the command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from PIL import Image

__all__ = ["load_ffhq_faces", "gaussian_blur", "main", "render_markdown"]

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ffhq_1k")
SIGMAS = (0.8, 1.5, 2.5)
COMPONENTS = (50, 100, 200)


def load_ffhq_faces(root: str, first: int, last: int, size: int) -> tuple[np.ndarray, list[int]]:
    """FFHQ-layout faces root/images256x256/NNNNN/IIIII.jpg (or .png) with first <= I <= last, resized to
    size px with Lanczos; returns float32 (N, size, size, 3) in [0, 1] and the indices found."""
    images, found = [], []
    for index in range(first, last + 1):
        folder = os.path.join(root, "images256x256", f"{index // 1000 * 1000:05d}")
        for ext in (".jpg", ".png"):
            path = os.path.join(folder, f"{index:05d}{ext}")
            if os.path.isfile(path):
                with Image.open(path) as image:
                    image = image.convert("RGB").resize((size, size), Image.LANCZOS)
                images.append(np.asarray(image, dtype=np.float32) / 255.0)
                found.append(index)
                break
    if not images:
        raise FileNotFoundError(f"no FFHQ faces with indices {first}-{last} under {root}/images256x256")
    return np.stack(images), found


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (N, H, W, C) images with standard deviation sigma px over H and W only."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="reflect").astype(np.float32)


def _sheet(rows: list[np.ndarray], path: str, scale: int = 2) -> None:
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    image = Image.fromarray(np.round(grid * 255).astype(np.uint8))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    image.save(path + ".tmp.png")
    os.replace(path + ".tmp.png", path)


def _write(path: str, text: str) -> None:
    from data_prep.atomic import write_text

    write_text(path, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="the ffhq_1k folder (FFHQ layout)")
    parser.add_argument("--first", type=int, default=1000)
    parser.add_argument("--last", type=int, default=1100)
    parser.add_argument("--size", type=int, default=64, help="resolution the metrics are calibrated at")
    parser.add_argument("--train-last", type=int, default=999,
                        help="training faces 0..N give the mean image and the principal components")
    parser.add_argument("--out", default=os.path.join(RESULTS, "face_calibration"))
    args = parser.parse_args(argv)
    if not os.path.isdir(args.data):
        print(f"error: --data {args.data} is not a folder (expected ../shared/data/ffhq_1k)", file=sys.stderr)
        return 2

    from facevae.analysis import face_metrics as fm
    from facevae.analysis.metrics import local_seam_ratio, psnr, seam_ratio
    from facevae.analysis.pca import PrincipalFaces

    started = time.time()
    originals, indices = load_ffhq_faces(args.data, args.first, args.last, args.size)
    analyzer = fm.face_analyzer()
    t0 = time.perf_counter()
    reference = analyzer.analyse(originals)
    seconds = time.perf_counter() - t0
    detection = fm.detection_rate(reference)
    train, _ = load_ffhq_faces(args.data, 0, args.train_last, args.size)
    blocks = args.size // 16  # grid lines every 16 px, as in benchmarks/real_faces.py
    degraded = [(f"Gaussian blur sigma {sigma} px", "blur", gaussian_blur(originals, sigma)) for sigma in SIGMAS]
    degraded.append((f"mean image of faces 0-{args.train_last}", "smooth",
                     np.broadcast_to(train.mean(axis=0), originals.shape).astype(np.float32)))
    degraded += [(f"projection on {k} principal components", "smooth", PrincipalFaces.fit(train, k).project(originals))
                 for k in COMPONENTS]
    self_identity = fm.identity_kept(reference, reference)
    rows = [{"degradation": "none (originals vs themselves)", "kind": "original", "psnr_db": float("inf"),
             "detection_rate": detection.rate, "identity_kept": self_identity.kept,
             "median_distance": self_identity.median_distance, "kept_of_detected": self_identity.kept_of_detected,
             "both_detected": self_identity.both_detected,
             "frechet_face_distance": fm.frechet_face_distance(reference, reference).distance,
             "seam_ratio": seam_ratio(originals, blocks), "local_seam_ratio": local_seam_ratio(originals, blocks)}]
    for name, kind, images in degraded:
        t0 = time.perf_counter()
        analysis = analyzer.analyse(images)
        seconds += time.perf_counter() - t0
        identity = fm.identity_kept(reference, analysis)
        try:
            frechet = fm.frechet_face_distance(reference, analysis).distance
        except ValueError:  # fewer than 2 detected faces (the mean image is one face)
            frechet = None
        rows.append({"degradation": name, "kind": kind,
                     "psnr_db": psnr(float(np.mean((images - originals) ** 2))),
                     "detection_rate": fm.detection_rate(analysis).rate, "identity_kept": identity.kept,
                     "median_distance": identity.median_distance, "kept_of_detected": identity.kept_of_detected,
                     "both_detected": identity.both_detected, "frechet_face_distance": frechet,
                     "seam_ratio": seam_ratio(images, blocks), "local_seam_ratio": local_seam_ratio(images, blocks)})
    kept = [row["identity_kept"] for row in rows if row["kind"] in ("original", "blur")]
    checks = {
        "detection_rate_originals_at_least_95pct": detection.rate >= 0.95,
        "identity_kept_originals_100pct": self_identity.kept == 1.0,
        "identity_kept_decreases_with_blur": bool(all(a > b for a, b in zip(kept, kept[1:]))),
    }
    images_analysed = len(originals) * (1 + len(degraded))
    result = {"data": os.path.realpath(args.data), "indices": f"{args.first}-{args.last}", "faces": len(indices),
              "missing": sorted(set(range(args.first, args.last + 1)) - set(indices)), "image_size": args.size,
              "dlib_size": analyzer.size, "rows": rows, "checks": checks,
              "face_metrics_images_per_second": images_analysed / seconds,
              "seconds": round(time.time() - started, 1),
              "command": " ".join(["benchmarks/face_calibration.py", *(argv if argv is not None else sys.argv[1:])])}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    _write(args.out + ".json", json.dumps(result, indent=2) + "\n")
    _write(args.out + ".md", render_markdown(result))
    _sheet([originals[:10]] + [images[:10] for _, _, images in degraded], args.out + ".png")
    print(render_markdown(result))
    return 0 if all(checks.values()) else 1


def _number(value, digits: int) -> str:
    """value with ``digits`` decimals ("n/a" for None or nan); round-off of order 1e-10 around 0 prints as 0."""
    if value is None or value != value:
        return "n/a"
    return f"{0.0 if abs(value) < 5e-5 else value:.{digits}f}"


def render_markdown(result: dict) -> str:
    lines = [f"Face-metric calibration: {result['faces']} real FFHQ faces (indices {result['indices']}, missing "
             f"{result['missing'] or 'none'}) at {result['image_size']} px, upscaled to {result['dlib_size']} px for dlib; "
             "identity is against the unblurred original (same person: descriptor distance < 0.6).", "",
             "| images | PSNR (dB) | face detection rate | identity kept | kept where both detected | median distance "
             "(both detected) | Frechet face distance | seam ratio | local seam ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['degradation']} | {row['psnr_db']:.2f} | {100 * row['detection_rate']:.0f}% | "
                     f"{100 * row['identity_kept']:.0f}% | {100 * row['kept_of_detected']:.0f}% ({row['both_detected']}) | "
                     f"{_number(row['median_distance'], 3)} | {_number(row['frechet_face_distance'], 4)} | "
                     f"{row['seam_ratio']:.3f} | {row['local_seam_ratio']:.3f} |")
    lines += ["", "Checks: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in result["checks"].items()),
              "", f"Face metrics ran at {result['face_metrics_images_per_second']:.1f} images/s on this machine. "
              f"Command: `PYTHONPATH=. python {result['command']}` ({result['seconds']} s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
