"""Fit flows (planar, radial, ...) to 2-D energy functions by reverse KL; print the loss and a grid-normalised KL.

    python -m facevae.flows2d --target two-gaussians --flows 15 --steps 3000
    python -m facevae.flows2d --target u1 --flows 32 --flow-type radial
    python -m facevae.flows2d --target u1 u2 u3 u4 --flows 2 8 32 --steps 4000 \
        --figures docs/flows2d --results benchmarks/results/flows2d_u1-u4

Every (target, K) pair is fitted (see facevae.analysis.density2d for the targets and the objective); one
figure per pair (target density, flow density, samples) goes to ``--figures``; with ``--results
STEM`` the table is also written to STEM.md and STEM.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Sequence

from facevae import cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from facevae.analysis.density2d import TARGETS
    from facevae.config import FLOW_TYPES

    p = cli.ArgumentParser(
        prog="python -m facevae.flows2d",
        description="Fit K flows on a N(0, I) base to an unnormalised 2-D density by reverse KL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--target", nargs="+", choices=TARGETS, default=["two-gaussians"],
                   help="energy function(s) U (default: two-gaussians)")
    p.add_argument("--flows", nargs="+", type=cli.positive_int, default=[15], help="number(s) K of flows (default: 15)")
    p.add_argument("--flow-type", choices=FLOW_TYPES, default="planar",
                   help="kind of each flow, a type registered in facevae.flows.registry (default: planar)")
    p.add_argument("--steps", type=cli.positive_int, default=3000, help="Adam steps (default: 3000)")
    p.add_argument("--batch", type=cli.positive_int, default=500, help="base draws per step (default: 500)")
    p.add_argument("--learning-rate", type=cli.positive_float, default=5e-3, help="Adam step size (default: 0.005)")
    p.add_argument("--sigma", type=cli.positive_float, default=1.0,
                   help="std of each two-gaussians component (default: 1.0)")
    p.add_argument("--kl-samples", type=cli.positive_int, default=100_000, help="draws for the KL estimate (default: 100000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--figures", default="flows2d", help="folder for the PNG figures (default: flows2d)")
    p.add_argument("--results", help="write the table to RESULTS.md and RESULTS.json (default: no files)")
    return p


def _write(path: str, text: str) -> None:
    from data_prep import atomic

    atomic.write_text(path, text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from facevae.analysis.density2d import fit_flows, plot_fit

    command = "python -m facevae.flows2d " + " ".join(sys.argv[1:] if argv is None else argv)
    rows = []
    for target in args.target:
        for flows in args.flows:
            bar = tqdm(total=args.steps, desc=f"{target} K={flows}", unit="step", file=sys.stderr, leave=False)

            def progress(step, loss, bar=bar):
                bar.update(100)
                bar.set_postfix(loss=f"{loss:.3f}")

            began = time.perf_counter()
            result = fit_flows(target, flows, steps=args.steps, batch=args.batch, learning_rate=args.learning_rate,
                               seed=args.seed, sigma=args.sigma, kl_samples=args.kl_samples, progress=progress,
                               flow_type=args.flow_type)
            bar.close()
            name = (f"{target}-K{flows}" + ("" if args.flow_type == "planar" else f"-{args.flow_type}")
                    + (f"-sigma{args.sigma:g}" if target == "two-gaussians" and args.sigma != 1 else ""))
            figure = plot_fit(result, os.path.join(args.figures, f"{name}.png"), sigma=args.sigma)
            row = {**result.summary(), "flow_type": args.flow_type, "seconds": round(time.perf_counter() - began, 1),
                   "figure": figure}
            rows.append(row)
            print(f"{target} K={flows} {args.flow_type}: final loss {row['final_loss']:.4f} nats, "
                  f"KL(q||p) {row['kl']:.4f} +- {row['kl_stderr']:.4f} nats (log Z {row['log_z']:.4f}); {figure}")
    table = ["| target | K | steps | final loss (nats) | KL(q\\|\\|p) (nats) | +- s.e. | log Z (grid) | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['target']} | {r['flows']} | {r['steps']} | {r['final_loss']:.4f} | {r['kl']:.4f} | "
              f"{r['kl_stderr']:.4f} | {r['log_z']:.4f} | {r['seconds']:.0f} |" for r in rows]
    print("\n".join(table))
    if args.results:
        _write(args.results + ".md", f"Command: `{command}`\n\n" + "\n".join(table) + "\n")
        _write(args.results + ".json", json.dumps({"command": command, "args": vars(args), "results": rows}, indent=2))
        print(f"table: {args.results}.md, {args.results}.json")
    return 0


if __name__ == "__main__":
    cli.run(main, "python -m facevae.flows2d", user_errors=(ValueError,))
