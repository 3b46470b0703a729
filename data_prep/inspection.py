"""Looking inside a shard directory: summary, record counts and checksums, contact sheet.

The contact sheet tiles the first images of a split (8 per row) with a caption under each tile:
the label for MNIST, else the source index followed by the binary attributes that are 1 (when
the shards carry attributes). Tiles smaller than 64 px are enlarged with nearest-neighbour
filtering so that digits stay legible.
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from data_prep import storage
from data_prep.errors import DataError, ShardError
from data_prep.manifest import read_manifest, shard_paths
from data_prep.records import feature_spec
from data_prep.verify import verify_shards

__all__ = ["read_examples", "count_records", "summary_lines", "contact_sheet"]

_COLUMNS = 8
_MIN_TILE = 64
_CAPTION = 14
_SHEET_MARK = "data_prep inspect contact sheet"  # PNG Software text: this command wrote the file


def _fix(manifest: dict) -> str:
    return f"re-run `{manifest.get('command') or 'the preparation command'} --overwrite` to write the shards again"


def _unreadable(path: str, manifest: dict, error: Exception) -> ShardError:
    message = str(getattr(error, "message", error)).strip().splitlines()[0]
    return ShardError(f"{path}: corrupt shard, cannot be read ({message}); {_fix(manifest)}")


def read_examples(directory: str, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """The first ``limit`` examples of ``split`` in shard order, as NumPy arrays.

    Keys: ``image`` uint8 (N, H, W, C), ``index`` int64 (N,), and ``label`` (N,) /
    ``attributes`` (N, A) when the shards hold them. Shard sizes are checked against the
    manifest first, and a shard TensorFlow cannot read raises ShardError naming it.
    """
    import tensorflow as tf

    manifest = read_manifest(directory)
    shard_paths(directory, manifest, split)  # DataError naming the splits when there is no such split
    files = verify_shards(directory, manifest, split, checksums=False)
    height, width, channels = manifest["image_shape"]
    spec = feature_spec(manifest)

    def parse(serialized):
        features = tf.io.parse_single_example(serialized, spec)
        if manifest["encoding"] == "raw":
            image = tf.io.decode_raw(features["image"], tf.uint8)
        else:
            image = tf.io.decode_png(features["image"], channels=channels)
        features["image"] = tf.reshape(image, [height, width, channels])
        return features

    batches = []
    remaining = limit
    for path in files:
        if remaining is not None and remaining <= 0:
            break
        dataset = tf.data.TFRecordDataset(path).map(parse)
        if remaining is not None:
            dataset = dataset.take(remaining)
        try:
            for batch in dataset.batch(4096).as_numpy_iterator():
                batches.append(batch)
                remaining = None if remaining is None else remaining - len(batch["index"])
        except tf.errors.OpError as error:
            raise _unreadable(path, manifest, error) from None
    if not batches:
        empty = {"image": np.zeros((0, height, width, channels), np.uint8), "index": np.zeros((0,), np.int64)}
        return empty
    return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}


def count_records(directory: str, *, verify: bool = False) -> dict[str, int]:
    """Records actually present per split. Shard sizes are always checked against the manifest,
    SHA-256 with ``verify``; ShardError (a DataError) names a missing, altered or corrupt shard."""
    import tensorflow as tf

    manifest = read_manifest(directory)
    counts = {split: 0 for split in manifest["splits"]}
    paths = verify_shards(directory, manifest, None, checksums=bool(verify))
    for shard, path in zip(manifest["shards"], paths):
        try:
            counts[shard["split"]] += int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda n, _: n + 1))
        except tf.errors.OpError as error:
            raise _unreadable(path, manifest, error) from None
    return counts


def summary_lines(directory: str, counts: dict[str, int] | None = None) -> list[str]:
    """Human-readable summary of the manifest (and of the counted records, when given)."""
    manifest = read_manifest(directory)
    lines = [
        f"shards in {directory}",
        f"  source     {manifest['source']['kind']} from {manifest['source']['path']}",
        f"  command    {manifest['command']}",
        f"  images     {'x'.join(map(str, manifest['image_shape']))} uint8, {manifest['encoding']} encoding, "
        f"pixel values {manifest.get('pixel_values', '0-255')}",
    ]
    for split, count in manifest["splits"].items():
        files = sum(1 for shard in manifest["shards"] if shard["split"] == split)
        found = "" if counts is None else f", {counts[split]:,} read back" + (" (OK)" if counts[split] == count else " (MISMATCH)")
        lines.append(f"  {split:<10} {count:,} examples in {files} shards{found}")
    if manifest.get("label_names"):
        lines.append(f"  labels     {manifest['num_classes']} classes: {' '.join(manifest['label_names'])}")
    if manifest["attribute_names"]:
        lines.append(f"  attributes {len(manifest['attribute_names'])}: {', '.join(manifest['attribute_names'])}")
    lines.append(f"  skipped    {manifest['skipped']['count']:,} files at preparation")
    return lines


def _caption(manifest: dict, examples: dict, i: int) -> str:
    if "label" in examples:
        return f"{manifest['label_names'][int(examples['label'][i])]}  #{int(examples['index'][i])}"
    text = f"#{int(examples['index'][i])}"
    if "attributes" in examples:
        table = examples["attributes"]
        binary = np.isin(np.nan_to_num(table, nan=0.0), (0.0, 1.0)).all(axis=0)  # skip continuous columns
        true = [name for name, value, flag in zip(manifest["attribute_names"], table[i], binary) if flag and value == 1]
        text += " " + ",".join(name for name in true if name != "face_detected")
    return text


def contact_sheet(directory: str, out_path: str, *, split: str | None = None, count: int = 64) -> str:
    """Write a PNG tiling the first ``count`` images of ``split`` (default: the first non-empty one). The PNG's
    ``Software`` text marks it as this command's; an existing ``out_path`` without that mark (a user's file) is
    not replaced (DataError)."""
    manifest = read_manifest(directory)
    _check_sheet_target(out_path)
    if split is None:
        split = next((name for name, n in manifest["splits"].items() if n > 0), None)
        if split is None:
            raise DataError(f"{directory}: every split is empty")
    examples = read_examples(directory, split, count)
    images = examples["image"]
    height, width, _ = manifest["image_shape"]
    scale = max(1, math.ceil(_MIN_TILE / max(height, width)))
    tile_w, tile_h = width * scale, height * scale
    rows = max(1, math.ceil(len(images) / _COLUMNS))
    sheet = Image.new("RGB", (_COLUMNS * tile_w, rows * (tile_h + _CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, image in enumerate(images):
        tile = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB")
        tile = tile.resize((tile_w, tile_h), Image.Resampling.NEAREST)
        x, y = (i % _COLUMNS) * tile_w, (i // _COLUMNS) * (tile_h + _CAPTION)
        sheet.paste(tile, (x, y))
        caption = _caption(manifest, examples, i)
        while caption and draw.textlength(caption, font=font) > tile_w - 2:
            caption = caption[:-1]
        draw.text((x + 1, y + tile_h + 1), caption, fill="black", font=font)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", _SHEET_MARK)
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG", pnginfo=info)
    storage.write_bytes_atomic(out_path, buffer.getvalue())
    return out_path


def _check_sheet_target(out_path: str) -> None:
    """DataError when ``out_path`` holds a file that is not a contact sheet written by this command (its PNG
    ``Software`` text says ``_SHEET_MARK``): a user's file is never replaced."""
    if not storage.exists(out_path):
        return
    try:
        mark = Image.open(io.BytesIO(storage.read_bytes(out_path))).info.get("Software")
    except (OSError, ValueError):
        mark = None
    if mark != _SHEET_MARK:
        raise DataError(f"{out_path}: exists and is not a contact sheet written by data_prep inspect; not replacing "
                        "it: pass another --sheet PATH, or move the file away")
