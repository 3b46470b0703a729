"""Do latent attribute edits work? Judged on labelled faces: prepared shards (FFHQ features, CelebA) or the built-in faces.

    PYTHONPATH=. python benchmarks/attribute_edits.py --model RUN_DIR --data SHARD_DIR --attributes smiling,glasses,male
    PYTHONPATH=. python benchmarks/attribute_edits.py --model RUN_DIR --data synthetic --attributes glasses,smiling

1. A judge: ``--judges`` (default 3) small multi-label Keras CNNs (one sigmoid per judged attribute), trained
   with seeds --seed, --seed + 1, ..., whose probabilities are averaged. Each is trained on the labelled
   training faces, each used twice, as is and Gaussian-blurred (sigma uniform in [0.5, 2.5] px), with
   random horizontal flips, so that it also reads a VAE's smoother decodings. Shards: the train
   split (the faces the VAE saw; labels a face lacks are left out of the loss; each face weighted so
   that the judged attributes are independent, ``independence_weights``). Built-in faces:
   8000 renders of seed 7, never seen by the VAE. Its held-out accuracy and ROC AUC are reported on the
   originals and on their VAE reconstructions. One judge is not enough: what a single CNN reads on an
   edited face depends on its training seed. On the 64-px acceptance run, removing a smile left the
   other attributes unchanged on 78%, 94% and 97% of the faces by judges of seeds 0, 1 and 2, and
   removing glasses on 87%, 87% and 60%. The mean of three reads the held-out originals' sex better than
   its seed-0 member does (89% against 82%).
2. Attribute vectors exactly as ``python -m facevae.attributes`` computes them by default (balanced: correlated
   attributes held fixed; ``--no-balance``: as it does with --no-balance, the plain class-mean difference)
   (``facevae.analysis.latent.attribute_vector`` on the codes, refined when the model refines, of its default
   --count faces of the train split, or of the built-in faces of its default --seed), applied at the CLI's
   default strength (``facevae.analysis.latent.default_alpha``, 1.5 class-mean gaps) and at 2x that.
3. On held-out faces (shards: the validation split, else test; built-in: seed 0 from index 200000):
   add the attribute to faces without it and remove it from faces with it (labels from the table),
   decode, and report: success (the judge reads the target value), the judge's reading of the unedited
   reconstruction as a baseline, other judged attributes unchanged (all equal the judge's reading of
   the unedited reconstruction), and identity kept (``facevae.analysis.face_metrics``: dlib descriptor
   distance < 0.6; undetected faces count as not kept) of the edit against the same face's unedited
   reconstruction (what the edit should preserve) and against the original. A control moves each face as
   far as the 1x edit along a random unit direction of its own (seeded by --seed): how often the judge's
   readings change under a change of that size that is not the attribute.

Attribute names match case-insensitively (CelebA's ``Smiling`` and the manifest's ``smiling``).

Each trained judge is cached in ``--cache-dir`` (``judge-<key>.keras`` with ``judge-<key>.json`` beside it, both written
atomically) under a key made of what it was trained on: the shards' checksums from their manifest (built-in
faces: the renderer's source hash, seed and count), the attribute list in order, the image size and channels,
and the judge's settings (``JUDGE_SETTINGS``, epochs, seed). A second call on the same labelled data (for
example ``benchmarks/real_faces.py`` measuring two variants) loads it instead of training again; the output
says which happened. ``--retrain-judge`` ignores the cache (and refreshes it).
Writes benchmarks/results/attribute_edits_<tag>.{json,md,png} (the picture: per attribute, faces
without it and with it: original, reconstruction, edit at 1x and 2x) and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

__all__ = ["resolve_attributes", "build_judge", "independence_weights", "train_judge", "judge_scores", "judge_key",
           "cached_judge", "main", "render_markdown", "JUDGE_SETTINGS"]

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DEFAULT_ATTRIBUTES = {"synthetic": ("glasses", "smiling"), "shards": ("smiling", "glasses", "male")}
STRENGTHS = (1.0, 2.0)
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "facevae", "attribute_edits")
# Everything fixed in build_judge / train_judge that decides the judge's weights; bump "version" when the code
# changes in a way these numbers do not capture, so that cached judges are not reused.
JUDGE_SETTINGS = {"version": 2, "filters": [16, 32, 64, 64], "dense": 64, "dropout": 0.3, "bn_momentum": 0.9,
                  "blur_sigma": [0.5, 2.5], "flip": "horizontal", "batch_size": 64, "optimizer": "adam",
                  "learning_rate": 1e-3, "weights": "independent"}


def resolve_attributes(requested: list[str], available: list[str], data: str) -> list[str]:
    """Map requested names to the data's spelling, case-insensitively, keeping a threshold ('Age>=40' ->
    'age>=40'; ``facevae.data.labelled_faces.parse_attribute``); one-line error naming the offer."""
    from dataclasses import replace

    from facevae.data.labelled_faces import AttributeDataError, parse_attribute

    by_lower = {name.lower(): name for name in available}
    out = []
    for name in requested:
        spec = parse_attribute(name)
        if spec.column.lower() not in by_lower:
            raise AttributeDataError(f"attribute {spec.column!r} is not in {data!r}; it offers: "
                                     f"{', '.join(available) or 'none'}")
        spelled = str(replace(spec, column=by_lower[spec.column.lower()]))
        if spelled not in out:
            out.append(spelled)
    return out


def _blur(images: np.ndarray, rng: np.random.Generator, low: float = JUDGE_SETTINGS["blur_sigma"][0],
          high: float = JUDGE_SETTINGS["blur_sigma"][1]) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigmas = rng.uniform(low, high, len(images))
    return np.stack([gaussian_filter(x, sigma=(s, s, 0), mode="reflect") for x, s in zip(images, sigmas)]).astype(np.float32)


def build_judge(size: int, channels: int, count: int):
    """Conv(16, 32, 64, 64) x [BN (momentum 0.9: few steps on small sets), ReLU, max-pool] -> Dense(64) -> dropout -> Dense(count, sigmoid)."""
    import keras

    inputs = keras.Input((size, size, channels))
    h = keras.layers.RandomFlip("horizontal")(inputs)
    for filters in (16, 32, 64, 64):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = keras.layers.Activation("relu")(keras.layers.BatchNormalization(momentum=0.9)(h))
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(h))
    h = keras.layers.Dropout(0.3)(h)
    return keras.Model(inputs, keras.layers.Dense(count, activation="sigmoid")(h))


def independence_weights(labels: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per-face weights [N] under which the judged attributes are independent: w = prod_a p_a(y_a) / p(y).

    ``labels``, ``known``: bool [N, A]. Over the faces with every label known, p(y) is the share of faces with
    that face's label combination and p_a(y_a) the share with its value of attribute a; when every combination
    occurs, the weighted combination frequencies equal the product of the marginals. The weights of these faces
    are scaled to average 1 (a combination that never occurs cannot be weighted up). A judge trained
    with them has no statistical reason to read one attribute from another (on FFHQ faces 0-999, 68% of
    the faces with glasses are labelled male against 40% of those without). Faces with an unknown label: 1.
    """
    labels, known = np.asarray(labels, bool), np.asarray(known, bool)
    weights = np.ones(len(labels))
    full = known.all(axis=1)
    if not full.any():
        return weights
    rows = labels[full]
    cells, index, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    marginal = rows.mean(axis=0)
    product = np.prod(np.where(cells, marginal, 1 - marginal), axis=1)
    raw = (product / (counts / len(rows)))[index.reshape(-1)]
    weights[full] = raw / raw.mean()
    return weights


def _masked_bce(y_true, y_pred):
    """Weighted binary cross-entropy over the labels a face has: y_true = [labels (A), weight * known (A)]."""
    import keras.ops as ops

    count = ops.shape(y_pred)[-1]
    labels, known = y_true[:, :count], y_true[:, count:]
    p = ops.clip(y_pred, 1e-7, 1 - 1e-7)
    loss = -(labels * ops.log(p) + (1 - labels) * ops.log(1 - p))
    return ops.sum(loss * known) / ops.maximum(ops.sum(known), 1.0)


def train_judge(images: np.ndarray, labels: np.ndarray, known: np.ndarray, epochs: int, seed: int):
    """Fit :func:`build_judge` on images (N, S, S, C) and their blurred copies; labels/known (N, A) bool.

    Each face's loss is weighted by :func:`independence_weights`, so that the judge reads each attribute from
    the face rather than from the attributes that happen to go with it in the training faces.
    """
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = np.concatenate([images, _blur(images, rng)])
    weighted_known = known * independence_weights(labels, known)[:, None]
    y = np.concatenate([labels, weighted_known], axis=1).astype(np.float32)
    y = np.concatenate([y, y])
    model = build_judge(images.shape[1], images.shape[3], labels.shape[1])
    model.compile(optimizer=keras.optimizers.Adam(JUDGE_SETTINGS["learning_rate"]), loss=_masked_bce)
    model.fit(x, y, batch_size=JUDGE_SETTINGS["batch_size"], epochs=epochs, verbose=0, shuffle=True)
    return model


def _data_identity(data: str, judge_count: int) -> dict:
    """What the judge's training faces are, by content: shard checksums, or the built-in renderer and its seed.

    Raises ValueError (a one-line reason) when the shards' manifest carries no checksum for a shard.
    """
    from facevae.data.labelled_faces import SYNTHETIC

    if data == SYNTHETIC:
        import hashlib

        import data_prep.synthetic as renderer

        with open(renderer.__file__, "rb") as handle:
            source = hashlib.sha256(handle.read()).hexdigest()
        return {"kind": SYNTHETIC, "renderer_sha256": source, "seed": 7, "start": 0, "count": int(judge_count)}
    with open(os.path.join(data, "manifest.json")) as handle:
        shards = json.load(handle).get("shards") or []
    train = sorted((s["file"], s.get("sha256")) for s in shards if s.get("split") == "train")
    if not train or any(checksum is None for _, checksum in train):
        raise ValueError(f"{os.path.join(data, 'manifest.json')} lists no sha256 for its train shards")
    return {"kind": "shards", "train_shards_sha256": [checksum for _, checksum in train]}


def judge_key(data: dict, attributes: list[str], image_size: int, channels: int, epochs: int, seed: int) -> dict:
    """The full description a cached judge is stored and looked up under (JSON-serialisable)."""
    return {"data": data, "attributes": list(attributes), "image_size": int(image_size), "channels": int(channels),
            "epochs": int(epochs), "seed": int(seed), "settings": JUDGE_SETTINGS}


def _digest(key: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def cached_judge(cache_dir: str | None, key: dict, train, retrain: bool = False):
    """Load the judge stored under ``key`` in ``cache_dir``, else call ``train()`` and store its result.

    Files: ``cache_dir/judge-<digest>.keras`` (the model) and ``.json`` (the key, written last, so a judge is
    only found once both are complete); each written atomically (temporary sibling, then ``os.replace``).
    Returns ``(model, info)``; ``info["status"]`` is ``"loaded"`` or ``"trained"``, with the path and the
    training seconds (those of the original training when loaded). ``cache_dir=None`` trains without caching.
    """
    import keras

    from data_prep.atomic import atomic_path, write_json

    stem = os.path.join(cache_dir, f"judge-{_digest(key)}") if cache_dir else None
    if stem and not retrain and os.path.isfile(stem + ".json") and os.path.isfile(stem + ".keras"):
        try:
            with open(stem + ".json") as handle:
                stored = json.load(handle)
            if stored.get("key") == json.loads(json.dumps(key)):
                model = keras.models.load_model(stem + ".keras", compile=False)
                return model, {"status": "loaded", "path": stem + ".keras",
                               "train_seconds": stored.get("train_seconds"), "trained_at": stored.get("trained_at")}
        except (OSError, ValueError) as error:
            print(f"judge cache {stem}.keras unreadable ({error}); training again", file=sys.stderr)
    started = time.time()
    model = train()
    seconds = round(time.time() - started, 1)
    info = {"status": "trained", "path": None, "train_seconds": seconds,
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if stem:
        with atomic_path(stem + ".keras") as temporary:
            model.save(temporary)
        write_json(stem + ".json", {"key": key, "train_seconds": seconds, "trained_at": info["trained_at"]})
        info["path"] = stem + ".keras"
    return model, info


def judge_scores(judge, images: np.ndarray) -> np.ndarray:
    """Judge probabilities (N, A) of one judge, or their mean over a list of judges (an ensemble)."""
    members = judge if isinstance(judge, (list, tuple)) else [judge]
    return np.mean([np.asarray(m.predict(images, batch_size=256, verbose=0), np.float64) for m in members], axis=0)


def _accuracy_auc(scores: np.ndarray, labels: np.ndarray, known: np.ndarray) -> dict:
    from facevae.analysis import latent

    y, s = labels[known], scores[known]
    auc = latent.roc_auc(s, y) if 0 < y.sum() < len(y) else None
    return {"accuracy": float(np.mean((s > 0.5) == y)) if len(y) else None, "auc": auc, "faces": int(len(y))}


def _identity(reference, edited_analysis) -> dict:
    from facevae.analysis import face_metrics as fm

    result = fm.identity_kept(reference, edited_analysis)
    return {"kept": result.kept, "median_distance": result.median_distance, "both_detected": result.both_detected}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="run directory or SavedModel")
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a shard directory whose manifest has attributes")
    parser.add_argument("--attributes", help="comma list to edit and judge (case-insensitive; default: "
                        "glasses,smiling for synthetic, smiling,glasses,male for shards)")
    parser.add_argument("--judge-epochs", type=int, default=30)
    parser.add_argument("--judges", type=int, default=3,
                        help="judges trained with seeds --seed, --seed + 1, ..., whose probabilities are averaged "
                             "(one judge's readings of edited faces depend on its seed; default: 3)")
    parser.add_argument("--judge-count", type=int, default=8000, help="built-in faces to train the judge on")
    parser.add_argument("--eval-count", type=int, default=2000, help="held-out faces (at most the split's size)")
    parser.add_argument("--no-identity", action="store_true", help="skip the dlib identity measures")
    parser.add_argument("--balance", action=argparse.BooleanOptionalAction, default=None,
                        help="vectors as `python -m facevae.attributes --balance` (correlated attributes held fixed by "
                             "least squares) or --no-balance (plain difference) computes them (default: as the CLI's default)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first judge (the others take the next seeds) and of the random-direction "
                             "control (default: 0)")
    parser.add_argument("--tag", help="results name: benchmarks/results/attribute_edits_<tag>.* (default: from --data)")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE,
                        help=f"where trained judges are kept and reused (default: {DEFAULT_CACHE}); '' = no cache")
    parser.add_argument("--retrain-judge", action="store_true", help="train the judge even when a cached one fits")
    args = parser.parse_args(argv)
    if args.judges < 1:
        parser.error(f"--judges must be at least 1. Received: {args.judges}")

    from facevae.analysis import latent
    from facevae.attributes import build_parser as attributes_parser
    from facevae.export.inference import load_inference_model
    from facevae.data.labelled_faces import SYNTHETIC, AttributeDataError, attribute_names, load_labelled_faces

    synthetic = args.data == SYNTHETIC
    try:
        available = attribute_names(args.data)
        requested = args.attributes.split(",") if args.attributes else [
            n for n in DEFAULT_ATTRIBUTES["synthetic" if synthetic else "shards"] if n.lower() in map(str.lower, available)]
        names = resolve_attributes(requested, available, args.data)
    except AttributeDataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not names:
        print(f"error: --data {args.data} offers none of the default attributes; pass --attributes", file=sys.stderr)
        return 2
    tag = args.tag or ("synthetic" if synthetic else os.path.basename(os.path.normpath(args.data)))
    out = os.path.join(RESULTS, f"attribute_edits_{tag}")
    started = time.time()
    model = load_inference_model(args.model)
    size, channels = model.image_size, model.channels

    # Judge training faces and held-out faces.
    if synthetic:
        train = load_labelled_faces(SYNTHETIC, args.judge_count, size, channels, seed=7)
        held = load_labelled_faces(SYNTHETIC, args.eval_count, size, channels, seed=0, start=200_000)
        held_name = "built-in faces, seed 0 from index 200000"
    else:
        with open(os.path.join(args.data, "manifest.json")) as handle:
            splits = json.load(handle)["splits"]
        held_split = "validation" if "validation" in splits else "test"
        train = load_labelled_faces(args.data, splits["train"], size, channels, split="train")
        held = load_labelled_faces(args.data, min(args.eval_count, splits[held_split]), size, channels, split=held_split)
        held_name = f"{held_split} split of {args.data}"

    def judged(faces) -> tuple[np.ndarray, np.ndarray]:
        """(labels, known), each bool [N, A], of the judged attributes, thresholds applied."""
        columns = [faces.binary(n) for n in names]
        return np.stack([c[0] for c in columns], axis=1), np.stack([c[1] for c in columns], axis=1)

    try:
        labels, known = judged(held)
    except AttributeDataError as error:  # a continuous column named without a threshold
        print(f"error: {error}", file=sys.stderr)
        return 2
    cache_dir = args.cache_dir or None
    try:
        identity = _data_identity(args.data, args.judge_count)
    except ValueError as error:
        print(f"judge not cached: {error}", file=sys.stderr)
        identity, cache_dir = None, None
    judge, judge_info = [], []
    for seed in range(args.seed, args.seed + args.judges):
        key = judge_key(identity, names, size, channels, args.judge_epochs, seed) if identity else {}
        member, info = cached_judge(cache_dir, key, lambda: train_judge(train.images, *judged(train), args.judge_epochs,
                                                                        seed), retrain=args.retrain_judge)
        judge.append(member)
        judge_info.append({**info, "seed": seed})
        print(f"judge (seed {seed}): {_judge_line(info)}", flush=True)

    x = held.images
    z = model.code(x)  # the faces' codes as `facevae.attributes` edits them (refined when the model refines)
    recon = model.decode(z)
    scores_x, scores_r = judge_scores(judge, x), judge_scores(judge, recon)
    recon_pred = scores_r > 0.5
    judge_quality = {n: {"originals": _accuracy_auc(scores_x[:, i], labels[:, i], known[:, i]),
                         "reconstructions": _accuracy_auc(scores_r[:, i], labels[:, i], known[:, i])}
                     for i, n in enumerate(names)}

    analysis_x = analysis_r = None
    identity_recon = None
    if not args.no_identity:
        from facevae.analysis import face_metrics as fm

        analysis_x, analysis_r = fm.analyse_faces(x), fm.analyse_faces(recon)
        identity_recon = {**_identity(analysis_x, analysis_r),
                          "detected_originals": fm.detection_rate(analysis_x).rate,
                          "detected_reconstructions": fm.detection_rate(analysis_r).rate}

    # Attribute vectors as `python -m facevae.attributes` computes them by default (or with --[no-]balance).
    # The CLI loads count + max(rows, count // 4) faces and fits on the first min(count, N - 1) with a label.
    defaults = attributes_parser().parse_args(["--model", args.model, "--data", args.data, "--attribute", names[0]])
    balance = defaults.balance if args.balance is None else args.balance
    vector_faces = load_labelled_faces(args.data, defaults.count + max(defaults.rows, defaults.count // 4), size,
                                       channels, seed=defaults.seed, split=defaults.split)
    z_vec = model.code(vector_faces.images, progress=True)
    first = np.arange(len(z_vec)) < min(defaults.count, len(z_vec) - 1)
    edits, pictures = {}, []
    rng = np.random.default_rng(args.seed)  # the random-direction control's directions
    for i, name in enumerate(names):
        labelled, known_here = vector_faces.binary(name)
        fit = first & known_here
        control = latent.balance_controls({**vector_faces.labels, name: labelled}, {**vector_faces.known, name: known_here},
                                          name, fit) if balance else {}
        vector = latent.attribute_vector(z_vec[fit], labelled[fit], name, control=control)
        alpha = latent.default_alpha(vector)
        usable = known[:, i]
        entry = {"gap": vector.gap, "vector_faces": list(vector.counts), "controlled_for": list(vector.controlled_for),
                 "held_out_auc": (latent.separation_auc(vector, z[usable], labels[usable, i])
                                  if 0 < labels[usable, i].sum() < usable.sum() else None)}
        others = [j for j in range(len(names)) if j != i]
        for direction, sign in (("add", 1.0), ("remove", -1.0)):
            subset = np.flatnonzero(usable & (labels[:, i] == (sign < 0)))
            target = sign > 0
            rows = {"faces": int(len(subset)), "reconstruction_reads_target": float(np.mean(recon_pred[subset, i] == target))
                    if len(subset) else None}
            for multiple in STRENGTHS:
                edited = model.decode(latent.apply(z[subset], vector, sign * multiple * alpha)) if len(subset) else x[:0]
                pred = judge_scores(judge, edited) > 0.5 if len(subset) else np.zeros((0, len(names)), bool)
                row = {"success": float(np.mean(pred[:, i] == target)) if len(subset) else None,
                       "others_unchanged": float(np.mean(np.all(pred[:, others] == recon_pred[subset][:, others], axis=1)))
                       if len(subset) and others else None}
                if analysis_x is not None and len(subset):
                    edited_analysis = fm.analyse_faces(edited)
                    row["identity_vs_reconstruction"] = _identity(analysis_r.subset(subset), edited_analysis)
                    row["identity_vs_original"] = _identity(analysis_x.subset(subset), edited_analysis)
                rows[f"{multiple:g}x"] = row
                if len(subset):
                    pictures.append((name, direction, multiple, subset[:6], edited[:6]))
            if len(subset):  # control: each face moved as far (1x) along a random unit direction of its own
                random = rng.standard_normal((len(subset), z.shape[1]))
                random /= np.linalg.norm(random, axis=1, keepdims=True)
                pred = judge_scores(judge, model.decode((z[subset] + alpha * random).astype(np.float32))) > 0.5
                rows["random_direction_1x"] = {
                    "success": float(np.mean(pred[:, i] == target)),
                    "others_unchanged": float(np.mean(np.all(pred[:, others] == recon_pred[subset][:, others], axis=1)))
                    if others else None}
            entry[direction] = rows
        edits[name] = entry

    result = {"model": os.path.realpath(args.model), "data": args.data, "held_out": held_name, "faces": int(len(x)),
              "judge_training_faces": int(len(train.images)), "image_size": size, "latent_dim": model.latent_dim,
              "attributes": names, "balanced_vectors": bool(balance), "default_strength_gaps": latent.DEFAULT_STRENGTH,
              "judge": judge_quality, "judge_seeds": [i["seed"] for i in judge_info], "judge_source": judge_info,
              "identity_reconstruction": identity_recon,
              "edits": edits, "seconds": round(time.time() - started, 1),
              "command": " ".join(["benchmarks/attribute_edits.py", *(argv if argv is not None else sys.argv[1:])])}
    os.makedirs(RESULTS, exist_ok=True)
    _write(out + ".json", json.dumps(result, indent=2) + "\n")
    _write(out + ".md", render_markdown(result))
    _picture(out + ".png", x, recon, pictures)
    print(render_markdown(result))
    return 0


def _write(path: str, text: str) -> None:
    from data_prep.atomic import write_text

    write_text(path, text)


def _picture(path: str, x, recon, pictures) -> None:
    """Per attribute and direction, one block of up to 6 faces: original, reconstruction, 1x, 2x (rows)."""
    from PIL import Image

    blocks = {}
    for name, direction, multiple, subset, edited in pictures:
        key = (name, direction)
        blocks.setdefault(key, [x[subset], recon[subset]]).append(edited)
    rows = []
    for parts in blocks.values():
        width = 6
        for part in parts:
            pad = np.zeros((width - len(part),) + part.shape[1:], part.dtype)
            rows.append(np.concatenate(list(np.concatenate([part, pad])), axis=1))
        rows.append(np.ones((4,) + rows[-1].shape[1:], np.float32))
    if not rows:
        return
    grid = np.concatenate(rows, axis=0)
    if grid.shape[-1] == 1:
        grid = np.repeat(grid, 3, axis=-1)
    image = Image.fromarray(np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8))
    image = image.resize((image.width * 2, image.height * 2), Image.NEAREST)
    image.save(path + ".tmp.png")
    os.replace(path + ".tmp.png", path)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _judge_line(info: dict | list | None) -> str:
    """Where the judge came from: one member's info, or a list of them (one line each, joined by '; ')."""
    if isinstance(info, list):
        return "; ".join(f"seed {member.get('seed')} " + _judge_line(member) for member in info)
    if not info:
        return "trained (source not recorded)"
    if info["status"] == "loaded":
        return f"loaded from {info['path']} (trained {info.get('trained_at')} in {info.get('train_seconds')} s)"
    where = f"; cached at {info['path']}" if info.get("path") else "; not cached"
    return f"trained in {info['train_seconds']} s{where}"


def _judges_phrase(result: dict) -> str:
    seeds = result.get("judge_seeds") or []
    if len(seeds) > 1:
        return f"{len(seeds)} judges (seeds {', '.join(map(str, seeds))}; their probabilities averaged)"
    return "judge"


def render_markdown(result: dict) -> str:
    lines = [f"Model `{result['model']}` ({result['image_size']} px, latent {result['latent_dim']}); held out: "
             f"{result['faces']} faces ({result['held_out']}); {_judges_phrase(result)} trained on "
             f"{result['judge_training_faces']} labelled faces (+ blurred copies): "
             f"{_judge_line(result.get('judge_source'))}.",
             "",
             "Judge on held-out faces: accuracy / ROC AUC against the labels.", "",
             "| attribute | originals | reconstructions |", "|---|---|---|"]
    for name, q in result["judge"].items():
        cells = [f"{_pct(q[k]['accuracy'])} / {q[k]['auc']:.3f}" if q[k]["auc"] is not None else _pct(q[k]["accuracy"])
                 for k in ("originals", "reconstructions")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    ident = result["identity_reconstruction"]
    if ident:
        lines += ["", f"Reconstructions vs originals: identity kept {_pct(ident['kept'])} (median distance "
                  f"{ident['median_distance']:.3f}); faces detected in {_pct(ident['detected_originals'])} of originals, "
                  f"{_pct(ident['detected_reconstructions'])} of reconstructions."]
    identity = ident is not None
    lines += ["", f"Edits (strength in multiples of the default alpha = {result.get('default_strength_gaps', 1.0):g} class-mean "
              "gap(s)). Success: the judge reads "
              "the target value; 'recon already' is the share of unedited reconstructions it already reads so. "
              + ("Identity kept: vs the unedited reconstruction / vs the original (undetected faces count as not kept)."
                 if identity else "Identity not measured (--no-identity)."), "",
              "A random direction moves each face as far as the 1x edit along a random unit direction of its "
              "own: its success and others unchanged are what the judge reads for a change of that size that is "
              "not the attribute (the control).", "",
              "| edit | faces | recon already | success 1x | success 2x | others unchanged 1x / 2x "
              "| random direction: success / others unchanged "
              + ("| identity vs recon 1x / 2x | identity vs original 1x / 2x |" if identity else "|"),
              "|---|---|---|---|---|---|---|" + ("---|---|" if identity else "")]
    for name, e in result["edits"].items():
        for direction in ("add", "remove"):
            r = e[direction]
            one, two, random = r.get("1x", {}), r.get("2x", {}), r.get("random_direction_1x", {})
            line = (f"| {direction} {name} | {r['faces']} | {_pct(r['reconstruction_reads_target'])} | "
                    f"{_pct(one.get('success'))} | {_pct(two.get('success'))} | "
                    f"{_pct(one.get('others_unchanged'))} / {_pct(two.get('others_unchanged'))} | "
                    f"{_pct(random.get('success'))} / {_pct(random.get('others_unchanged'))} |")
            if identity:
                ident_r = " / ".join(_pct(s.get("identity_vs_reconstruction", {}).get("kept")) for s in (one, two))
                ident_o = " / ".join(_pct(s.get("identity_vs_original", {}).get("kept")) for s in (one, two))
                line += f" {ident_r} | {ident_o} |"
            lines.append(line)
    lines += ["", "Vectors: " + ", ".join(
        f"{n} gap {e['gap']:.2f} from {e['vector_faces'][0]}+{e['vector_faces'][1]} faces"
        + (f", held-out AUC {e['held_out_auc']:.3f}" if e["held_out_auc"] is not None else "")
        + (f", controlled for {', '.join(e['controlled_for'])}" if e.get("controlled_for") else "")
        for n, e in result["edits"].items()),
        "", f"Command: `PYTHONPATH=. python {result['command']}` ({result['seconds']} s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
