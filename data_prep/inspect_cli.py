"""``python -m data_prep inspect DIR``: print the manifest and counts, write a contact sheet.

    python -m data_prep inspect data/ffhq128 [--split train] [--sheet sheet.png] [--verify]

The contact sheet (default ``DIR/contact_sheet.png``) tiles the first 64 images with their labels.
"""
from __future__ import annotations

import argparse

from data_prep import storage
from data_prep.inspection import contact_sheet, count_records, summary_lines

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    counts = count_records(args.directory, verify=args.verify)
    print("\n".join(summary_lines(args.directory, counts)))
    if args.verify:
        print("  checksums  all shards match the manifest")
    sheet = args.sheet or storage.join(args.directory, "contact_sheet.png")
    contact_sheet(args.directory, sheet, split=args.split, count=args.count)
    print(f"contact sheet: {sheet}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="summary, record counts and a contact sheet of a shard directory",
                                   description="Print the manifest and counts; write a contact sheet PNG.")
    parser.add_argument("directory", help="shard directory (local path, gs:// or s3://)")
    parser.add_argument("--split", default=None, help="split shown on the sheet (default: first non-empty)")
    parser.add_argument("--sheet", default=None, help="PNG to write (default: DIR/contact_sheet.png)")
    parser.add_argument("--count", type=int, default=64, help="images on the sheet")
    parser.add_argument("--verify", action="store_true", help="also check every shard's SHA-256")
    parser.set_defaults(func=_run)
