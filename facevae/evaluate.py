"""Score a trained FaceVAE on held-out data: negative ELBO, importance-weighted NLL, bits/dim, MSE, PSNR,
and optionally faces judged as faces (``--face-metrics``) and FID/KID (``--fid``).

    python -m facevae.evaluate --model runs/synthetic-20261121-101500 --importance-samples 100
    python -m facevae.evaluate --model saved_models/bmnist-K10 --dataset binarized_mnist \
        --data-dir shards/bmnist --split test --importance-samples 5000

``--model`` is a run directory (its newest checkpoint is used), an export directory holding
``model.keras``, or a ``.keras`` file. The dataset defaults to the one in the run's config.json
(built-in faces when there is none); the split defaults to ``test`` when the data has one, else
``validation`` (folder and FFHQ-subset shards have no test split). Prints a table and writes
metrics.json (``--output``). bits/dim is reported only when the likelihood is a real likelihood
(not for the ``mse`` objective, whose units are not nats).

``--face-metrics`` (needs ``pip install 'facevae[faces]'``) judges the first ``--judge-count``
images of the split and their reconstructions with dlib (``facevae.analysis.face_metrics``):
detection rate, identity kept (descriptor distance < 0.6) with the median distance, and the Frechet
face distance of the reconstructions vs the originals; and ``--samples N`` prior samples at
``--temperature T``: detection rate and Frechet face distance vs the originals. The seam ratio
(``facevae.analysis.metrics.seam_ratio``, 1.0 = no block grid) and the local seam ratio (the same grid lines
against their neighbours, ``local_seam_ratio``) of originals, reconstructions and samples come with it.
``--fid`` (with ``--inception-weights PATH``, or Keras' cache) adds FID and KID (with its standard error) of the
samples and of the reconstructions vs the originals (``facevae.analysis.inception``); the weights are never
downloaded.

    python -m facevae.evaluate --model runs/ffhq-64 --data-dir shards/ffhq_1k --face-metrics \
        --fid --inception-weights ~/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from facevae import cli

__all__ = [
    "build_parser",
    "resolve_model",
    "held_out_images",
    "default_split",
    "reports_bits_per_dim",
    "collect_images",
    "reconstructions_of",
    "prior_samples",
    "face_metric_report",
    "fid_report",
    "main",
]

PROG = "python -m facevae.evaluate"


def resolve_model(path: str) -> tuple[str, str | None]:
    """(path of the .keras file to load, the run directory's config.json or None) for ``--model``
    (facevae.training.rundir.resolve_model: a run's newest checkpoint, an export's model.keras, or the file)."""
    from facevae.training.rundir import resolve_model as resolve

    source = resolve(path)
    if source.keras is None:
        raise ValueError(f"--model {path}: holds neither checkpoints/epoch-NNN.keras nor model.keras")
    return source.keras, source.config


def held_out_images(dataset: str, split: str, data_dir: str | None, image_size: int, channels: int,
                    batch_size: int, count: int | None, train_count: int = 8000, validation_count: int = 1000,
                    seed: int = 0):
    """An iterable of float32 image batches [B, S, S, C] in [0, 1] and the number of images in it.

    synthetic: built-in faces after the training ones (validation: the next ``validation_count``;
    test: the ``validation_count`` after those). Other datasets: shards of ``split`` via data_prep.
    """
    import numpy as np

    if dataset == "synthetic":
        from data_prep.synthetic import generate_faces

        start = train_count if split == "validation" else train_count + validation_count
        if split == "train":
            start = 0
        images, _ = generate_faces(count or validation_count, size=image_size, seed=seed, channels=channels,
                                   start=start)
        images = images.astype(np.float32) / 255.0
        return [images[i : i + batch_size] for i in range(0, len(images), batch_size)], len(images)
    from data_prep import pipeline
    from data_prep.manifest import read_manifest
    from facevae.config import DataConfig
    from facevae.data.datasets import DataUnavailable, resolve_shards

    data_dir = resolve_shards(DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size, channels=channels))
    available = read_manifest(data_dir)["splits"].get(split)
    if not available:
        raise DataUnavailable(f"shards in {data_dir} have no {split!r} split")
    binarize = "dynamic" if dataset == "mnist" else None
    data = pipeline.load(data_dir, split, batch_size, training=False, binarize=binarize, seed=seed)
    total = min(int(available), count) if count else int(available)
    if count:
        data = data.unbatch().take(count).batch(batch_size)
    return data, total


def default_split(dataset: str, data_dir: str | None, image_size: int, channels: int) -> str:
    """The split to score when ``--split`` is not given: ``test`` if the data has one, else ``validation``.

    The built-in faces have both. Shards: read from the manifest's ``splits`` (folder and FFHQ-subset
    shards have train/validation only). Raises DataUnavailable when there is neither.
    """
    if dataset == "synthetic":
        return "test"
    from data_prep.manifest import read_manifest
    from facevae.config import DataConfig
    from facevae.data.datasets import DataUnavailable, resolve_shards

    shard_dir = resolve_shards(DataConfig(dataset=dataset, data_dir=data_dir, image_size=image_size, channels=channels))
    splits = read_manifest(shard_dir)["splits"]
    for split in ("test", "validation"):
        if splits.get(split):
            return split
    raise DataUnavailable(f"shards in {shard_dir} have neither a 'test' nor a 'validation' split "
                          f"(they have {sorted(splits)}); name one with --split")


def reports_bits_per_dim(likelihood: str) -> bool:
    """Whether the objective of ``likelihood`` is a negative log-likelihood in nats, so that bits/dim means something:
    ``facevae.model.losses.LIKELIHOODS[name].in_nats`` (False for ``mse``: r_loss_factor * MSE + KL is not a density
    of the pixels)."""
    from facevae.model.losses import LIKELIHOODS

    return bool(LIKELIHOODS[likelihood].in_nats)


def collect_images(batches, limit: int | None = None):
    """The first ``limit`` images (all when None) of an iterable of batches [B, S, S, C] as one float32 array."""
    import numpy as np

    parts, have = [], 0
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        images = np.asarray(images, np.float32)
        if limit is not None:
            images = images[: limit - have]
        parts.append(images)
        have += len(images)
        if limit is not None and have >= limit:
            break
    if not parts:
        raise ValueError("no images to judge: the split is empty")
    return np.concatenate(parts)


def reconstructions_of(model, images, batch_size: int):
    """``model.reconstruct`` (posterior mode, deterministic) of float images [N, S, S, C], in batches; numpy [N, S, S, C]."""
    import numpy as np

    return np.concatenate([np.asarray(model.reconstruct(images[i : i + batch_size]))
                           for i in range(0, len(images), batch_size)])


def prior_samples(model, count: int, temperature: float, seed: int, batch_size: int):
    """``count`` prior samples ``model.sample`` (decode(prior(eps, T)): through the fitted latent prior when the model
    has one, else decode(T eps)), eps ~ N(0, I) drawn with numpy's generator seeded ``seed``; [N, S, S, C]."""
    import numpy as np

    noise = np.random.default_rng(seed).standard_normal((count, model.config.latent_dim)).astype(np.float32)
    return np.concatenate([np.asarray(model.sample(noise=noise[i : i + batch_size], temperature=temperature))
                           for i in range(0, count, batch_size)])


def _frechet_or_none(a, b) -> dict:
    from facevae.analysis import face_metrics

    try:
        result = face_metrics.frechet_face_distance(a, b)
    except ValueError as error:  # fewer than 2 detected faces on a side
        return {"frechet_face_distance": None, "frechet_face_distance_note": str(error)}
    return {"frechet_face_distance": result.distance, "frechet_faces": [result.count_a, result.count_b]}


def _seams_or_none(images) -> dict:
    from facevae.analysis.metrics import local_seam_ratio, seam_ratio

    try:
        return {"seam_ratio": seam_ratio(images), "local_seam_ratio": local_seam_ratio(images)}
    except ValueError:  # a side not divisible by 4
        return {"seam_ratio": None, "local_seam_ratio": None}


def face_metric_report(originals, reconstructions, samples, temperature: float) -> dict:
    """Faces judged as faces (definitions in :mod:`facevae.analysis.face_metrics`), as a JSON-ready dict.

    originals, reconstructions: paired float images [N, S, S, C] in [0, 1]; samples: [M, S, S, C] prior
    samples drawn at ``temperature``. Returns {"originals": {count, detection_rate, seam_ratio,
    local_seam_ratio}, "reconstructions": {count, detection_rate, identity_kept, identity_kept_of_detected,
    median_distance, both_detected, frechet_face_distance (vs originals) and frechet_faces [count originals,
    count recon], seam_ratio, local_seam_ratio}, "samples": {count, temperature, detection_rate,
    frechet_face_distance (vs originals), frechet_faces, seam_ratio, local_seam_ratio}}. A Frechet distance is
    None (with a note) when a set has < 2 detected faces; the seam ratios are None when the image side is not
    divisible by 4.
    """
    from facevae.analysis import face_metrics as fm

    analysed = {name: fm.analyse_faces(images) for name, images in
                (("originals", originals), ("reconstructions", reconstructions), ("samples", samples))}
    report = {}
    for name, images in (("originals", originals), ("reconstructions", reconstructions), ("samples", samples)):
        rate = fm.detection_rate(analysed[name])
        report[name] = {"count": rate.count, "detection_rate": rate.rate, **_seams_or_none(images)}
    identity = fm.identity_kept(analysed["originals"], analysed["reconstructions"])
    report["reconstructions"].update(
        identity_kept=identity.kept, identity_kept_of_detected=None if identity.both_detected == 0
        else identity.kept_of_detected, median_distance=None if identity.both_detected == 0
        else identity.median_distance, both_detected=identity.both_detected, threshold=identity.threshold,
        **_frechet_or_none(analysed["originals"], analysed["reconstructions"]))
    report["samples"].update(temperature=float(temperature),
                             **_frechet_or_none(analysed["originals"], analysed["samples"]))
    return report


def fid_report(originals, reconstructions, samples, feature_model, kid_subset_size: int = 1000,
               seed: int = 0, batch_size: int = 25) -> dict:
    """FID and KID (:mod:`facevae.analysis.inception`) of samples and of reconstructions vs the originals.

    feature_model maps images [B, 299, 299, 3] in [-1, 1] to pool features [B, 2048] (InceptionV3 with
    ImageNet weights for meaningful figures). Returns {"originals": count, "samples"/"reconstructions":
    {count, fid, kid, kid_stderr, kid_subsets, kid_subset_size}}. FID is biased upwards at small N: compare
    only at equal counts. KID needs >= 4 images per set; below that its fields are None.
    """
    from facevae.analysis import inception

    reference = inception.inception_features(originals, feature_model, batch_size=batch_size)
    report = {"originals": int(len(reference))}
    for name, images in (("samples", samples), ("reconstructions", reconstructions)):
        features = inception.inception_features(images, feature_model, batch_size=batch_size)
        entry = {"count": int(len(features)), "fid": inception.frechet_inception_distance(reference, features).distance}
        try:
            kid = inception.kernel_inception_distance(reference, features, subset_size=kid_subset_size, seed=seed)
            entry.update(kid=kid.mean, kid_stderr=kid.standard_error, kid_subsets=kid.subsets,
                         kid_subset_size=kid.subset_size)
        except ValueError as error:
            entry.update(kid=None, kid_stderr=None, kid_note=str(error))
        report[name] = entry
    return report


def _judged_rows(result: dict) -> list[tuple[str, str]]:
    """Table rows for the face metrics and FID/KID in ``result`` (none when neither was asked for)."""
    def number(value, digits):
        return "n/a" if value is None else f"{value:.{digits}f}"

    def percent(value):
        return "n/a" if value is None else f"{100 * value:.1f}%"

    def seams(part):
        return f"{number(part['seam_ratio'], 3)} ({number(part['local_seam_ratio'], 3)})"

    rows = []
    faces = result.get("face_metrics")
    if faces:
        o, r, s = faces["originals"], faces["reconstructions"], faces["samples"]
        t = f"T={s['temperature']:g}"
        rows += [(f"originals: faces detected (of {o['count']})", percent(o["detection_rate"])),
                 ("originals: seam ratio (local)", seams(o)),
                 (f"reconstructions: faces detected (of {r['count']})", percent(r["detection_rate"])),
                 ("reconstructions: identity kept (d < 0.6)", percent(r["identity_kept"])),
                 ("reconstructions: median identity distance", number(r["median_distance"], 3)),
                 ("reconstructions: Frechet face distance", number(r["frechet_face_distance"], 4)),
                 ("reconstructions: seam ratio (local)", seams(r)),
                 (f"samples {t}: faces detected (of {s['count']})", percent(s["detection_rate"])),
                 (f"samples {t}: Frechet face distance", number(s["frechet_face_distance"], 4)),
                 (f"samples {t}: seam ratio (local)", seams(s))]
    fid = result.get("fid")
    if fid:
        for name in ("samples", "reconstructions"):
            entry = fid[name]
            kid = "n/a" if entry["kid"] is None else f"{entry['kid']:.4f} +- {entry['kid_stderr']:.4f}"
            rows += [(f"{name}: FID ({entry['count']} vs {fid['originals']})", f"{entry['fid']:.2f}"),
                     (f"{name}: KID", kid)]
    return rows


def build_parser() -> argparse.ArgumentParser:
    from facevae.config import DATASETS

    p = cli.ArgumentParser(
        prog="python -m facevae.evaluate",
        description="Evaluate a trained FaceVAE: -ELBO, importance-weighted NLL, bits/dim, MSE and PSNR.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--model", required=True, help="run directory, export directory or .keras file")
    p.add_argument("--dataset", choices=DATASETS, help="data to score (default: the run's, else synthetic)")
    p.add_argument("--data-dir", help="shards (or raw data) for non-synthetic datasets")
    p.add_argument("--split", choices=("test", "validation", "train"),
                   help="split (default: test when the data has one, else validation)")
    p.add_argument("--count", type=cli.positive_int, help="score only the first N images (default: all)")
    p.add_argument("--importance-samples", type=cli.non_negative_int, default=1000,
                   help="S for the IW-NLL; 0 skips it (default: 1000)")
    p.add_argument("--chunk", type=cli.positive_int, default=100, help="importance samples per pass (default: 100)")
    p.add_argument("--batch-size", type=cli.positive_int, default=50, help="images per pass (default: 50)")
    p.add_argument("--mse-count", type=cli.positive_int,
                   help="score reconstruction MSE/PSNR on the first N images (default: all; 1000 for a pixelcnn "
                        "decoder, which reconstructs pixel by pixel; 500 for a model whose codes are refined)")
    p.add_argument("--refine-steps", type=cli.non_negative_int,
                   help="gradient steps that refine each face's code before it is reconstructed (default: the "
                        "model's own refine_steps; 0 = the encoder's code, to compare)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--output", help="metrics JSON path (default: MODEL_DIR/eval-SPLIT/metrics.json)")
    j = p.add_argument_group("faces judged as faces, FID and KID")
    j.add_argument("--face-metrics", action="store_true",
                   help="dlib face metrics of reconstructions and prior samples, and their seam ratios "
                        "(needs pip install 'facevae[faces]')")
    j.add_argument("--fid", action="store_true",
                   help="FID and KID of prior samples and reconstructions vs the originals (InceptionV3 ImageNet "
                        "weights from --inception-weights or Keras' cache; never downloaded)")
    j.add_argument("--inception-weights", metavar="PATH",
                   help="Keras' inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 for --fid")
    j.add_argument("--judge-count", type=cli.positive_int, default=1000,
                   help="originals (and their reconstructions) judged by --face-metrics/--fid: the first N of the "
                        "scored images (default: 1000)")
    j.add_argument("--samples", type=cli.positive_int, default=200,
                   help="prior samples judged by --face-metrics/--fid (default: 200)")
    j.add_argument("--temperature", type=cli.positive_float, default=1.0,
                   help="prior temperature of those samples: z = T eps (default: 1.0)")
    j.add_argument("--kid-subset-size", type=cli.positive_int, default=1000,
                   help="KID subset size (disjoint subsets; capped at half the smaller set) (default: 1000)")
    return p


def _check_judges(args) -> str | None:
    """Fail fast, before any model is loaded: the dlib models for --face-metrics, the weights file for --fid.

    Returns a one-line error message or None; the InceptionV3 weights path is stored in args.inception_weights.
    """
    if args.face_metrics:
        from facevae.analysis import face_metrics

        try:
            face_metrics.face_analyzer()
        except face_metrics.FaceMetricsUnavailable as error:
            return f"--face-metrics: {error}"
    if args.fid:
        from facevae.analysis import inception

        try:
            args.inception_weights = inception.resolve_inception_weights(args.inception_weights)
        except inception.InceptionWeightsError as error:
            return f"--fid: {error}"
    return None


def _judge(args, model, batches, seed: int) -> dict:
    """The --face-metrics and --fid entries of metrics.json (see face_metric_report and fid_report)."""
    from facevae.analysis import inception

    originals = collect_images(batches, args.judge_count)
    reconstructions = reconstructions_of(model, originals, args.batch_size)
    samples = prior_samples(model, args.samples, args.temperature, seed, args.batch_size)
    out = {}
    if args.face_metrics:
        out["face_metrics"] = face_metric_report(originals, reconstructions, samples, args.temperature)
    if args.fid:
        feature_model = inception.load_inception(args.inception_weights)
        out["fid"] = fid_report(originals, reconstructions, samples, feature_model,
                                kid_subset_size=args.kid_subset_size, seed=seed)
        out["fid"].update(temperature=float(args.temperature), weights=args.inception_weights)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = _check_judges(args)
    if problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    model_path, config_path = resolve_model(args.model)
    import keras
    from tqdm import tqdm

    from facevae.analysis import metrics
    from facevae.config import RunConfig
    from facevae.model.vae import FaceVAE  # noqa: F401  (registers the class for load_model)

    keras.utils.set_random_seed(args.seed)
    model = keras.models.load_model(model_path)
    if args.refine_steps is not None:
        model.config.refine_steps = args.refine_steps
    run = RunConfig.load(config_path) if config_path else None
    dataset = args.dataset or (run.data.dataset if run else "synthetic")
    data_dir = args.data_dir or (run.data.data_dir if run else None)
    extra = {"train_count": run.data.train_count, "validation_count": run.data.validation_count} if run else {}
    args.split = args.split or default_split(dataset, data_dir, model.config.image_size, model.config.channels)
    batches, total = held_out_images(dataset, args.split, data_dir, model.config.image_size, model.config.channels,
                                     args.batch_size, args.count, seed=run.train.seed if run else 0, **extra)
    with tqdm(total=total, unit="img", desc="evaluating", file=sys.stderr) as bar:
        limit = args.mse_count or metrics.default_reconstruction_limit(model)
        result = metrics.evaluate_model(model, batches, args.importance_samples, args.chunk, progress=bar.update,
                                        reconstruction_limit=limit)
    result.update(model=model_path, dataset=dataset, split=args.split, likelihood=model.config.likelihood,
                  flows=model.config.flows, refine_steps=model.config.refine_steps)
    in_nats = reports_bits_per_dim(model.config.likelihood)
    if not in_nats:  # not a likelihood: its bits/dim would be a number without a meaning
        result = {key: value for key, value in result.items() if not key.endswith("bits_per_dim")}
    if args.face_metrics or args.fid:
        result.update(_judge(args, model, batches, args.seed))
    base = os.path.dirname(model_path) if config_path is None else os.path.dirname(config_path)
    output = args.output or os.path.join(base, f"eval-{args.split}", "metrics.json")
    from data_prep import atomic

    atomic.write_json(output, result)
    units = "nats" if in_nats else "objective units"
    rows = [("images", f"{result['examples']}"), (f"-ELBO ({units})", f"{result['negative_elbo']:.3f}")]
    if in_nats:
        rows += [("-ELBO bits/dim", f"{result['negative_elbo_bits_per_dim']:.4f}")]
    if args.importance_samples:
        rows += [(f"IW-NLL, S={args.importance_samples} ({units})",
                  f"{result['iw_nll']:.3f} +- {result['iw_nll_stderr']:.3f}")]
        if in_nats:
            rows += [("IW-NLL bits/dim", f"{result['iw_nll_bits_per_dim']:.4f}")]
    rows += [("reconstruction MSE", f"{result['reconstruction_mse']:.5f}"), ("PSNR (dB)", f"{result['psnr_db']:.2f}")]
    rows += _judged_rows(result)
    width = max(len(name) for name, _ in rows)
    print(f"{dataset} {args.split}, model {model_path}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"metrics: {output}")
    return 0


if __name__ == "__main__":
    from facevae.data.datasets import DataUnavailable

    cli.run(main, PROG, user_errors=(ValueError, DataUnavailable, FileNotFoundError))
