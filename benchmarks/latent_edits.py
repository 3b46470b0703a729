"""Do latent edits work? Measured on built-in faces, whose attributes are known exactly.

    PYTHONPATH=. python benchmarks/latent_edits.py --model /tmp/latent-runs/latent-demo

1. A small multi-head Keras CNN (glasses, smiling, long hair: sigmoid; hair colour: 5-way softmax)
   is trained on rendered faces (seed 7, never seen by the VAE), half of them box-blurred so that
   it also judges the VAE's smoother decodings; it is cached at --classifier.
2. Attribute vectors are computed exactly as ``python -m facevae.attributes`` does by default
   (``facevae.attributes`` defaults: first 2000 built-in faces of seed 0, ``latent.attribute_vector``),
   and applied at the CLI's default strength ``latent.default_alpha`` (= 1.5 class-mean gaps).
3. On held-out faces (seed 0, indices from 200000): for faces without the attribute, add it and
   decode; the add rate is the fraction the classifier calls positive; "unchanged" is the fraction
   whose other predicted attributes equal the classifier's reading of the unedited reconstruction.
   Removal likewise on faces with it.
4. Morphing: for random pairs (A, B), the MSE of each decoded path image to decode(z_B) must
   decrease strictly step by step; endpoints are compared with the reconstructions.

Writes benchmarks/results/latent_edits.md and .json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

__all__ = ["HEADS", "train_classifier", "classify", "main"]

HEADS = ("glasses", "smiling", "long_hair", "hair_colour")
EDITED = ("glasses", "smiling")
HAIR = ("black", "brown", "blond", "red", "grey")


def _blur(images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return tf.nn.avg_pool2d(images, 3, 1, "SAME").numpy()


def _targets(table) -> dict[str, np.ndarray]:
    return {"glasses": table["glasses"].astype("float32"), "smiling": table["smiling"].astype("float32"),
            "long_hair": table["long_hair"].astype("float32"), "hair_colour": table["hair_colour"].astype("int32")}


def train_classifier(size: int, channels: int, count: int = 8000, epochs: int = 8, seed: int = 7):
    """A multi-head CNN trained on rendered faces (half blurred). Returns the keras.Model."""
    import keras
    from data_prep.synthetic import generate_faces

    keras.utils.set_random_seed(seed)
    faces, table = generate_faces(count, size=size, seed=seed, channels=channels)
    x = faces.astype("float32") / 255.0
    x[::2] = _blur(x[::2])
    inputs = keras.Input((size, size, channels))
    h = inputs
    for filters in (16, 32, 64, 64):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(h))
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(h))
    outputs = {name: keras.layers.Dense(1, activation="sigmoid", name=name)(h) for name in HEADS[:3]}
    outputs["hair_colour"] = keras.layers.Dense(len(HAIR), activation="softmax", name="hair_colour")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss={**{n: "binary_crossentropy" for n in HEADS[:3]}, "hair_colour": "sparse_categorical_crossentropy"})
    model.fit(x, _targets(table), batch_size=64, epochs=epochs, verbose=0)
    return model


def classify(classifier, images: np.ndarray) -> dict[str, np.ndarray]:
    """{head: predictions [N]}: bool for the binary heads, colour code for hair_colour."""
    out = classifier.predict(images, batch_size=256, verbose=0)
    result = {name: out[name][:, 0] > 0.5 for name in HEADS[:3]}
    result["hair_colour"] = out["hair_colour"].argmax(axis=1)
    return result


def _agreement(a: dict, b: dict, heads) -> float:
    return float(np.mean(np.all([a[h] == b[h] for h in heads], axis=0)))


def _edit_rates(model, classifier, z, truth, recon_pred, vector, alpha, name) -> dict:
    from facevae.analysis import latent

    others = [h for h in HEADS if h != name]
    rates = {}
    for direction, sign, subset in (("add", 1.0, ~truth[name]), ("remove", -1.0, truth[name])):
        edited = model.decode(latent.apply(z[subset], vector, sign * alpha))
        pred = classify(classifier, edited)
        before = {h: v[subset] for h, v in recon_pred.items()}
        rates[direction] = {
            "faces": int(subset.sum()),
            "success": float(np.mean(pred[name] == (sign > 0))),
            "others_unchanged": _agreement(pred, before, others),
            **{f"unchanged_{h}": float(np.mean(pred[h] == before[h])) for h in others},
        }
    return rates


def _morph(model, z, pairs: int, steps: int, seed: int, method: str) -> dict:
    from facevae.analysis import latent

    rng = np.random.default_rng(seed)
    a, b = rng.choice(len(z), size=(2, pairs), replace=True)
    keep = a != b
    a, b = a[keep], b[keep]
    paths = latent.interpolate(z[a], z[b], steps, method).astype(np.float32)  # [T, P, d]
    decoded = model.decode(paths.reshape(-1, z.shape[1])).reshape((steps, len(a)) + (-1,))
    target = model.decode(z[b]).reshape(len(a), -1)
    start = model.decode(z[a]).reshape(len(a), -1)
    distance = np.mean((decoded - target[None]) ** 2, axis=-1)  # [T, P]
    monotone = np.all(np.diff(distance, axis=0) < 0, axis=0)
    return {"pairs": int(len(a)), "steps": steps, "monotone_fraction": float(monotone.mean()),
            "endpoint_a_max_abs": float(np.abs(decoded[0] - start).max()),
            "endpoint_b_max_abs": float(np.abs(decoded[-1] - target).max())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="run directory or SavedModel (the demo-sized model)")
    parser.add_argument("--classifier", default="/tmp/latent-classifier.keras", help="cache of the classifier")
    parser.add_argument("--eval-count", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "latent_edits"))
    args = parser.parse_args(argv)

    import keras
    from facevae.analysis import latent
    from facevae.attributes import build_parser as attributes_parser
    from facevae.export.inference import load_inference_model
    from facevae.data.labelled_faces import load_labelled_faces
    from data_prep.synthetic import generate_faces

    started = time.time()
    model = load_inference_model(args.model)
    size, channels = model.image_size, model.channels
    if os.path.exists(args.classifier):
        classifier = keras.saving.load_model(args.classifier)
    else:
        classifier = train_classifier(size, channels)
        classifier.save(args.classifier)

    faces, table = generate_faces(args.eval_count, size=size, seed=0, channels=channels, start=200_000)
    x = faces.astype(np.float32) / 255.0
    truth = {k: np.asarray(v) for k, v in _targets(table).items()}
    truth = {k: (v.astype(bool) if k != "hair_colour" else v) for k, v in truth.items()}
    z = model.encode(x)
    recon = model.decode(z)
    real_pred, recon_pred = classify(classifier, x), classify(classifier, recon)
    accuracy = {h: {"real": float(np.mean(real_pred[h] == truth[h])), "reconstruction": float(np.mean(recon_pred[h] == truth[h]))}
                for h in HEADS}

    defaults = attributes_parser().parse_args(["--model", args.model, "--attribute", "glasses"])
    vector_faces = load_labelled_faces("synthetic", defaults.count, size, channels, seed=defaults.seed)
    z_vec = model.encode(vector_faces.images)
    edits = {}
    for name in EDITED:
        vector = latent.attribute_vector(z_vec, vector_faces.labels[name], name)
        alpha = latent.default_alpha(vector)
        edits[name] = {"gap": vector.gap, "alpha": alpha, "auc_held_out": latent.separation_auc(vector, z, truth[name]),
                       **_edit_rates(model, classifier, z, truth, recon_pred, vector, alpha, name)}
        edits[name]["sweep"] = {}
        for multiple in (0.5, 1.5, 2.0):
            rates = _edit_rates(model, classifier, z, truth, recon_pred, vector, multiple * alpha, name)
            edits[name]["sweep"][str(multiple)] = {d: {k: rates[d][k] for k in ("success", "others_unchanged")}
                                                  for d in ("add", "remove")}
        edits[name]["sweep"]["1.0"] = {d: {k: edits[name][d][k] for k in ("success", "others_unchanged")}
                                       for d in ("add", "remove")}
    morphs = {m: _morph(model, z, args.pairs, 8, 1, m) for m in ("slerp", "lerp")}
    result = {"model": os.path.realpath(args.model), "image_size": size, "latent_dim": model.latent_dim,
              "classifier_accuracy": accuracy, "edits": edits, "morph": morphs,
              "seconds": round(time.time() - started, 1), "command": " ".join(["benchmarks/latent_edits.py", *sys.argv[1:]])}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json.tmp", "w") as handle:
        json.dump(result, handle, indent=2)
    os.replace(args.out + ".json.tmp", args.out + ".json")
    with open(args.out + ".md.tmp", "w") as handle:
        handle.write(render_markdown(result))
    os.replace(args.out + ".md.tmp", args.out + ".md")
    print(render_markdown(result))
    return 0


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def render_markdown(result: dict) -> str:
    lines = [f"Model: `{result['model']}` ({result['image_size']} px, latent {result['latent_dim']}); "
             f"held-out built-in faces (seed 0, from index 200000).", "",
             "| edit | faces | alpha (= gap) | held-out AUC | classifier says edited | other attributes unchanged "
             "| smile/glasses unchanged | hair colour unchanged | long hair unchanged |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, e in result["edits"].items():
        other = "smiling" if name == "glasses" else "glasses"
        for direction in ("add", "remove"):
            r = e[direction]
            lines.append(f"| {direction} {name} | {r['faces']} | {'+' if direction == 'add' else '-'}{e['alpha']:.2f} | "
                         f"{e['auc_held_out']:.3f} | {_pct(r['success'])} | {_pct(r['others_unchanged'])} | "
                         f"{_pct(r[f'unchanged_{other}'])} | {_pct(r['unchanged_hair_colour'])} | {_pct(r['unchanged_long_hair'])} |")
    lines += ["", "Other strengths (multiples of the default alpha): success / other attributes unchanged.", "",
              "| edit | 0.5x | 1x (default) | 1.5x | 2x |", "|---|---|---|---|---|"]
    for name, e in result["edits"].items():
        for direction in ("add", "remove"):
            cells = [e["sweep"][m][direction] for m in ("0.5", "1.0", "1.5", "2.0")]
            lines.append(f"| {direction} {name} | " + " | ".join(
                f"{_pct(c['success'])} / {_pct(c['others_unchanged'])}" for c in cells) + " |")
    lines.append("")
    lines += ["| morph | pairs | steps | distance to B decreases at every step | max abs endpoint error (A, B) |",
              "|---|---|---|---|---|"]
    for method, m in result["morph"].items():
        lines.append(f"| {method} | {m['pairs']} | {m['steps']} | {_pct(m['monotone_fraction'])} | "
                     f"{m['endpoint_a_max_abs']:.1e}, {m['endpoint_b_max_abs']:.1e} |")
    lines += ["", "Classifier accuracy (real renders / VAE reconstructions): " + ", ".join(
        f"{h} {_pct(a['real'])} / {_pct(a['reconstruction'])}" for h, a in result["classifier_accuracy"].items()),
        "", f"Command: `PYTHONPATH=. python {result['command']}` ({result['seconds']} s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
