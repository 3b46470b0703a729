"""How does a face recipe do on real faces? Train on FFHQ faces 0-999 at 64 px, judge on held-out faces 1000-1100.

    PYTHONPATH=. python benchmarks/real_faces.py --variants published,sigma0.1
    PYTHONPATH=. python benchmarks/real_faces.py --variants defaults --epochs 100
    PYTHONPATH=. python benchmarks/real_faces.py --variants defaults --image-size 128   # row "defaults-128px"
    PYTHONPATH=. python benchmarks/real_faces.py --run folder-defaults=runs/RUN   # a run trained elsewhere
    PYTHONPATH=. python benchmarks/real_faces.py --pca 200   # row "pca200": the linear baseline, nothing trained

1. Shards: ``python -m data_prep ffhq --src SRC --size S --validation-indices 1000-1100 --attributes TABLE`` into
   ``--work/shards<S>`` (made once, reused); S = ``--image-size``, 64 by default.
2. Each variant trains with ``python -m facevae.train --dataset ffhq --image-size S --batch-size 32 --epochs E``
   plus its own flags (VARIANTS below), into ``--work/runs/<variant>`` (``<variant>-<S>px`` when S is not 64); a
   finished run is reused.
3. Judged through the export, as a user would serve it: the ``reconstruct`` endpoint on the held-out faces and the
   ``sample`` endpoint on 200 fixed noise vectors scaled by each temperature. Reported: PSNR; identity kept
   (``facevae.analysis.face_metrics``: dlib descriptor distance < 0.6, an undetected face counts as not kept) and the
   median distance; Frechet face distance of reconstructions and of samples to the held-out faces; the face
   detection rate of samples; the seam ratio (``facevae.analysis.metrics.seam_ratio``; 1.0 = no block grid; lines
   every 16 px) of reconstructions and samples, and in brackets the local seam ratio (``local_seam_ratio``: the
   same lines against their neighbours, which face content barely moves); and the edit table of
   ``benchmarks/attribute_edits.py`` for smiling, glasses, male. ``--pca K`` measures the same figures (edits
   aside) for principal components of the training faces (``facevae.analysis.pca``): what a linear Gaussian model
   with a K-number code keeps of the same faces.
4. Writes ``--out/real_faces.{json,md}`` (all variants measured so far, merged by name) and
   ``--out/real_faces_<variant>.png``: held-out faces, their reconstructions, samples at T = 1 and 0.7, and the
   smile edit at the default strength on held-out faces without a smile.

A small training set (1,000 faces) and 100 test faces: figures from it describe this budget, not a face model of
publication quality.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

__all__ = ["VARIANTS", "prepare_shards", "train_variant", "training_minutes", "measure", "render_markdown", "main"]

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(HERE), "..", "shared", "data")
# The two baselines train without random shifts, as they were measured (README; the face presets no longer shift).
VARIANTS = {
    "published": ("published face-VAE recipe: r_loss_factor 10000 x MSE",
                  ["--likelihood", "mse", "--r-loss-factor", "10000", "--shift", "0"]),
    "sigma0.1": ("Gaussian likelihood, fixed sigma 0.1", ["--likelihood", "gaussian", "--sigma", "0.1", "--shift", "0"]),
    "defaults": ("the ffhq preset's defaults", []),
}
TEMPERATURES = (1.0, 0.7)
EDITED = "smiling,glasses,male"


def prepare_shards(src: str, table: str, out: str, size: int = 64) -> str:
    """FFHQ faces at ``size`` px with faces 1000-1100 held out (reused when ``out`` already holds them)."""
    from data_prep.prepare import prepare_dataset

    if not os.path.exists(os.path.join(out, "manifest.json")):
        prepare_dataset("ffhq", src, out, size=size, attributes=table, validation_indices="1000-1100", progress=False)
    return out


def train_variant(name: str, flags: list[str], shards: str, work: str, epochs: int, batch_size: int,
                  size: int = 64) -> tuple[str, float]:
    """Train (or reuse) ``work/runs/<name>``; returns (run directory, training minutes)."""
    from facevae.train import build_parser, config_from_args
    from facevae.training.trainer import fit

    run_dir = os.path.join(work, "runs", name)
    done = os.path.join(run_dir, "metrics.json")
    if os.path.exists(done):
        return run_dir, json.load(open(done)).get("train_minutes", float("nan"))
    argv = ["--dataset", "ffhq", "--data-dir", shards, "--image-size", str(size), "--batch-size", str(batch_size),
            "--epochs", str(epochs), "--output-dir", os.path.join(work, "runs"), "--run-name", name,
            "--export-dir", os.path.join(work, "saved_models"), *flags]
    started = time.time()
    print(f"[{name}] python -m facevae.train {' '.join(argv)}", flush=True)
    result = fit(config_from_args(build_parser().parse_args(argv)), verbose=0)
    minutes = (time.time() - started) / 60
    metrics = dict(result.metrics, train_minutes=minutes)
    with open(done, "w") as handle:
        json.dump(metrics, handle, indent=2)
    return result.run_dir, minutes


def _held_out(shards: str) -> np.ndarray:
    from data_prep.pipeline import load

    batches = load(shards, "validation", 64, training=False, drop_remainder=False)
    return np.concatenate([np.asarray(b) for b in batches])


def _labelled_train(shards: str, attribute: str) -> tuple[np.ndarray, np.ndarray]:
    from data_prep.pipeline import load

    images, labels = [], []
    for x, attributes in load(shards, "train", 100, training=False, drop_remainder=False, with_attributes=True):
        images.append(np.asarray(x))
        labels.append(np.asarray(attributes[attribute]))
    return np.concatenate(images), np.concatenate(labels)


def _edit_row(export, shards: str, held: np.ndarray, held_labels: np.ndarray, count: int) -> np.ndarray:
    """The smile added at the default strength (facevae.analysis.latent) to held-out faces without one."""
    import tensorflow as tf

    from facevae.analysis import latent

    train_x, train_smiling = _labelled_train(shards, "smiling")
    known = ~np.isnan(train_smiling)
    codes = getattr(export, "code", export.encode)  # exports older than the code endpoint: the encoder's codes
    z_train = np.concatenate([codes(tf.constant(train_x[known][i:i + 256]))["z"].numpy()
                              for i in range(0, int(known.sum()), 256)])
    vector = latent.attribute_vector(z_train, train_smiling[known] > 0.5, "smiling")
    without = np.flatnonzero(held_labels == 0)[:count]
    z = codes(tf.constant(held[without]))["z"].numpy()
    edited = latent.apply(z, vector, latent.default_alpha(vector))
    return export.decode(tf.constant(edited))["images"].numpy()


def _frechet(reference, analysis):
    """Frechet face distance, or None when fewer than 2 faces were detected in either set."""
    from facevae.analysis import face_metrics as fm

    try:
        return fm.frechet_face_distance(reference, analysis).distance
    except ValueError:
        return None


def judge_images(held: np.ndarray, recon: np.ndarray, sampled: dict) -> dict:
    """The table's figures for held-out faces ``held``, their reconstructions ``recon`` and ``sampled``
    {temperature: samples}, all [N, S, S, C] in [0, 1]."""
    from facevae.analysis import face_metrics as fm
    from facevae.analysis.metrics import local_seam_ratio, psnr, seam_ratio

    blocks = held.shape[1] // 16  # grid lines every 16 px: 4 x 4 cells at 64 px, 8 x 8 at 128 px
    analysis_held, analysis_recon = fm.analyse_faces(held), fm.analyse_faces(recon)
    identity = fm.identity_kept(analysis_held, analysis_recon)
    row = {
        "held_out_faces": int(len(held)),
        "psnr_db": psnr(float(np.mean((recon - held) ** 2))),
        "identity_kept": identity.kept,
        "median_distance": identity.median_distance,
        "frechet_reconstructions": _frechet(analysis_held, analysis_recon),
        "seam_reconstructions": seam_ratio(recon, blocks),
        "local_seam_reconstructions": local_seam_ratio(recon, blocks),
        "samples": {},
    }
    for t, images in sampled.items():
        analysis = fm.analyse_faces(images)
        row["samples"][f"{t:g}"] = {"count": len(images), "detected": fm.detection_rate(analysis).rate,
                                    "frechet": _frechet(analysis_held, analysis),
                                    "seam": seam_ratio(images, blocks), "local_seam": local_seam_ratio(images, blocks)}
    return row


def _noise(samples: int, dimensions: int, seed: int) -> np.ndarray:
    """The fixed sample noise [samples, dimensions], the same for every row with that many dimensions."""
    return np.random.default_rng(seed).standard_normal((samples, dimensions)).astype("float32")


def measure(run_dir: str, shards: str, samples: int, seed: int, tag: str, edits: bool,
            judge_cache: str | None = None) -> tuple[dict, list]:
    """Every figure of the table for one trained run, plus the picture rows.

    The edit judges are cached in ``judge_cache`` (keyed by the shards' checksums, attributes, judge settings and
    seed), so that every variant measured on the same shards is judged by the same judges, trained once.
    """
    import tensorflow as tf

    from data_prep.pipeline import load
    from facevae.export.serving import load_export

    export = load_export(os.path.join(run_dir, "export"))
    held = _held_out(shards)
    recon = export.reconstruct(tf.constant(held))["images"].numpy()
    latent_dim = int(export.sample.concrete_functions[0].structured_input_signature[0][0].shape[-1])
    noise = _noise(samples, latent_dim, seed)
    sampled = {t: export.sample(tf.constant(t * noise))["images"].numpy() for t in TEMPERATURES}
    row = judge_images(held, recon, sampled)
    labels = np.concatenate([np.asarray(a["smiling"]) for _, a in
                             load(shards, "validation", 64, training=False, drop_remainder=False, with_attributes=True)])
    pictures = [held[:10], recon[:10], sampled[1.0][:10], sampled[0.7][:10],
                _edit_row(export, shards, held, labels, 10)]
    if edits:
        sys.path.insert(0, HERE)
        import attribute_edits

        name = f"real_faces_{tag}"
        code = attribute_edits.main(["--model", run_dir, "--data", shards, "--attributes", EDITED, "--tag", name,
                                     "--cache-dir", judge_cache or ""])
        if code:
            raise SystemExit(code)
        with open(os.path.join(attribute_edits.RESULTS, f"attribute_edits_{name}.json")) as handle:
            row["edits"] = json.load(handle)
    return row, pictures


def measure_pca(components: int, shards: str, samples: int, seed: int) -> tuple[dict, list]:
    """The same figures for principal components of the training faces (``facevae.analysis.pca``): held-out faces
    projected on them, and samples mean + (T eps * spreads) V_k; a linear Gaussian model with a code of the same
    length as the VAE's, trained on the same faces."""
    from data_prep.pipeline import load
    from facevae.analysis.pca import PrincipalFaces

    train = np.concatenate([np.asarray(b) for b in load(shards, "train", 64, training=False, drop_remainder=False)])
    model = PrincipalFaces.fit(train, components)
    held = _held_out(shards)
    recon = model.project(held)
    noise = _noise(samples, components, seed)
    sampled = {t: model.sample(noise, t) for t in TEMPERATURES}
    return judge_images(held, recon, sampled), [held[:10], recon[:10], sampled[1.0][:10], sampled[0.7][:10]]


def _trained_run(name: str, flags: list[str] | None, runs: dict, shards: str, args, size: int) -> tuple[str, dict]:
    """(run directory, its flags, epochs, batch size and training minutes) of a variant, trained here (reused when
    finished), or of a ``--run`` trained elsewhere (``flags`` None: its own epochs, batch size and time)."""
    if flags is None:
        run_dir = runs[name]
        with open(os.path.join(run_dir, "config.json")) as handle:
            train = json.load(handle)["train"]
        with open(os.path.join(run_dir, "metrics.json")) as handle:
            minutes, note = training_minutes(json.load(handle))
        return run_dir, {"flags": [], "epochs": train["epochs"], "batch_size": train["batch_size"],
                         "train_minutes": minutes, "train_minutes_note": note}
    run_dir, minutes = train_variant(name, flags, shards, args.work, args.epochs, args.batch_size, size)
    return run_dir, {"flags": flags, "epochs": args.epochs, "batch_size": args.batch_size, "train_minutes": minutes,
                     "train_minutes_note": None}


def training_minutes(metrics: dict) -> tuple[float, str | None]:
    """(minutes, note) of a run's training from its metrics.json: ``train_seconds`` covers every session of a
    resumed run; where it is missing (an older file) or unknown (a session was interrupted), the last session's
    ``train_seconds_this_session``, noted "last session"."""
    if metrics.get("train_seconds") is not None:
        return metrics["train_seconds"] / 60, None
    return metrics.get("train_seconds_this_session", float("nan")) / 60, "last session"


def _sheet(path: str, rows: list) -> None:
    from facevae.analysis.plots import save_image_grid

    width = max(len(r) for r in rows)
    padded = [np.concatenate([r, np.ones((width - len(r),) + r.shape[1:], r.dtype)]) if len(r) < width else r
              for r in rows]
    save_image_grid(path, np.concatenate(padded), columns=width)


def _write(path: str, text: str) -> None:
    from data_prep.atomic import write_text

    write_text(path, text)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value, digits: int) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _seams(ratio: float, local: float | None) -> str:
    """The seam ratio, with the local seam ratio in brackets (rows measured before it existed have none)."""
    return f"{ratio:.2f}" if local is None else f"{ratio:.2f} ({local:.2f})"


def render_markdown(results: dict, command: str) -> str:
    lines = ["| variant | train min | PSNR dB | identity kept | median dist. | FFD recon | seams recon (local) | "
             + " | ".join(f"T={t:g} detected | T={t:g} FFD | T={t:g} seams (local)" for t in TEMPERATURES) + " |",
             "|---|---:|---:|---:|---:|---:|---:|" + "---:|---:|---:|" * len(TEMPERATURES)]
    for name, r in results.items():
        minutes = "-" if r["train_minutes"] is None else \
            f"{r['train_minutes']:.1f}" + (f" ({r['train_minutes_note']})" if r.get("train_minutes_note") else "")
        cells = [name, minutes, f"{r['psnr_db']:.1f}", _pct(r["identity_kept"]),
                 _num(r["median_distance"], 3), _num(r["frechet_reconstructions"], 4),
                 _seams(r["seam_reconstructions"], r.get("local_seam_reconstructions"))]
        for t in TEMPERATURES:
            s = r["samples"][f"{t:g}"]
            cells += [_pct(s["detected"]), _num(s["frechet"], 4), _seams(s["seam"], s.get("local_seam"))]
        lines.append("| " + " | ".join(cells) + " |")
    edit_lines = ["", "Attribute edits on the held-out faces (judge trained on faces 0-999: one CNN or the mean of "
                  "several, as the line under the table says per row; 'recon already': the share of unedited "
                  "reconstructions the judge already reads as the target, the baseline for success; success at the "
                  "default strength / at 2x; others unchanged and identity kept vs the face's own reconstruction, "
                  "default strength):",
                  "", "| variant | edit | faces | recon already | success 1x | success 2x | others unchanged | same person |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
    judges = []
    for name, r in results.items():
        edits = r.get("edits")
        if not edits:
            continue
        source = edits.get("judge_source") or {}
        members = source if isinstance(source, list) else [source]  # one judge, or the seeds of an ensemble
        status = "/".join(sorted({m["status"] for m in members if m.get("status")}))
        what = f"{len(members)} judges" if len(members) > 1 else "judge"
        judges.append(f"{name}: " + ", ".join(
            f"{a} acc. {q['originals']['accuracy']:.2f} (recon. {q['reconstructions']['accuracy']:.2f})"
            for a, q in edits["judge"].items()) + (f" [{what} {status}]" if status else ""))
        for attribute, entry in edits["edits"].items():
            for direction in ("add", "remove"):
                e = entry[direction]
                one, two = e.get("1x", {}), e.get("2x", {})
                same = (one.get("identity_vs_reconstruction") or {}).get("kept")
                edit_lines.append(f"| {name} | {direction} {attribute} | {e['faces']} | "
                                  f"{_pct(e.get('reconstruction_reads_target'))} | {_pct(one.get('success'))} | "
                                  f"{_pct(two.get('success'))} | {_pct(one.get('others_unchanged'))} | {_pct(same)} |")
    text = "\n".join(lines)
    if judges:
        text += "\n" + "\n".join(edit_lines) + "\n\nJudge held-out accuracy on originals (on reconstructions): " \
                + "; ".join(judges)
    return text + f"\n\nCommand: `{command}`\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=None,
                        help=f"comma list of {', '.join(VARIANTS)} (default: the two baselines, or none with --run)")
    parser.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR",
                        help="also measure a run trained elsewhere (for example by the acceptance command "
                             "`python -m facevae.train --dataset folder ...` on faces 0-999), as row NAME; repeatable")
    parser.add_argument("--src", default=os.path.join(SHARED, "ffhq_1k"), help="FFHQ folder (default: ../shared/data/ffhq_1k)")
    parser.add_argument("--attributes", default=os.path.join(SHARED, "ffhq_features", "ffhq_features.csv"),
                        help="FFHQ features table")
    parser.add_argument("--work", default=os.path.join(os.path.expanduser("~"), ".cache", "facevae", "real_faces"),
                        help="shards, runs and the edit judge (work/judges), reused between calls")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="where the tables and sheets go")
    parser.add_argument("--image-size", type=int, choices=(64, 128), default=64,
                        help="side of the shards and of the trained variants; rows at 128 px are named <variant>-128px")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of 31 steps (1,000 faces, batch 32)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=200, help="prior samples per temperature")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample noise")
    parser.add_argument("--no-edits", action="store_true", help="skip the attribute-edit benchmark")
    parser.add_argument("--pca", type=int, action="append", default=[], metavar="K",
                        help="also measure a linear baseline, row pca<K>: the held-out faces projected on the first K "
                             "principal components of the training faces, and Gaussian samples along them (no "
                             "training, no edits); repeatable")
    args = parser.parse_args(argv)
    variants = args.variants if args.variants is not None else ("" if args.run or args.pca else "published,sigma0.1")
    names = [n.strip() for n in variants.split(",") if n.strip()]
    runs = {}
    for item in args.run:
        name, _, run_dir = item.partition("=")
        if not name or not all(os.path.isfile(os.path.join(run_dir, f)) for f in ("metrics.json", "config.json")):
            parser.error(f"--run {item}: expected NAME=RUN_DIR of a finished run (with metrics.json and config.json)")
        trained_size = json.load(open(os.path.join(run_dir, "config.json")))["model"]["image_size"]
        if trained_size != args.image_size:
            parser.error(f"--run {item} was trained at {trained_size} px; add --image-size {trained_size}")
        runs[name] = run_dir
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; expected some of {list(VARIANTS)}")
    if not os.path.isdir(args.src):
        parser.error(f"--src {args.src} does not exist (FFHQ faces laid out as images*/NNNNN/NNNNN.*)")

    size = args.image_size
    shards = prepare_shards(args.src, args.attributes, os.path.join(args.work, f"shards{size}"), size)
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "real_faces.json")
    results = json.load(open(json_path)) if os.path.exists(json_path) else {}
    command = "PYTHONPATH=. python benchmarks/real_faces.py " + " ".join(argv if argv is not None else sys.argv[1:])
    suffix = "" if size == 64 else f"-{size}px"
    jobs = [(name + suffix, *VARIANTS[name], None) for name in names]
    jobs += [(name, f"run {path}", None, None) for name, path in runs.items()]
    jobs += [(f"pca{k}{suffix}", f"projection on {k} principal components of the training faces", None, k)
             for k in args.pca]
    for name, description, flags, components in jobs:
        if components is not None:  # a PCA baseline: nothing trained, no edits
            row, pictures = measure_pca(components, shards, args.samples, args.seed)
            training = {"flags": [], "epochs": None, "batch_size": None, "train_minutes": None,
                        "train_minutes_note": None}
        else:
            run_dir, training = _trained_run(name, flags, runs, shards, args, size)
            row, pictures = measure(run_dir, shards, args.samples, args.seed, name, not args.no_edits,
                                    os.path.join(args.work, "judges"))
        results[name] = {"description": description, **training, "command": command, **row}
        _sheet(os.path.join(args.out, f"real_faces_{name}.png"), pictures)
        _write(json_path, json.dumps(results, indent=2) + "\n")
        _write(os.path.join(args.out, "real_faces.md"), render_markdown(results, command))
        print(render_markdown({name: results[name]}, command), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
