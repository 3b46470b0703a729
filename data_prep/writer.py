"""Writing planned shards: parallel decoding, atomic shard files, resuming after an interruption.

The caller (``data_prep.prepare``) plans every shard: its file name, split and items in order.
Items whose pixels come from image files are decoded by a pool of worker processes (started
with ``spawn``; they import only Pillow and NumPy), in order, so the same plan always gives the
same bytes. The main process serializes ``tf.train.Example`` records into ``<shard>.tmp`` and
renames it to ``<shard>`` once complete, then records the shard (count, size, SHA-256, skipped
files) in ``.prepare-state.json``. A re-run with the same plan (same fingerprint) keeps every
shard recorded there and redoes only the missing ones; an interruption never leaves a shard
under its final name half-written.

``.prepare-state.json`` is also the in-progress marker: before the first shard is written it
lists every planned shard name (``planned``), so that data_prep only ever replaces or deletes
files that a manifest or this marker lists (``owned_names``). A file already in ``out`` under a
planned shard's name that the marker does not list belongs to the user: it is never replaced
unless the caller passes ``replace_foreign`` (``--overwrite``).
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import sys
from collections import Counter
from typing import Iterator

import numpy as np

from data_prep import storage
from data_prep.errors import DataError
from data_prep.images import decode_files
from data_prep.manifest import plain_file_name
from data_prep.records import serialize_example

__all__ = ["Item", "ShardPlan", "ShardResult", "STATE_NAME", "write_shards", "owned_names"]

STATE_NAME = ".prepare-state.json"
_CHUNK = 32  # most files per worker task: enough to amortise IPC; fewer for small jobs, to balance workers


_MIN_FILES_FOR_POOL = 64  # below this, starting worker processes (~0.5 s) costs more than it saves


@dataclasses.dataclass(frozen=True)
class Item:
    """One planned example: ``pixels`` is a file path (decoded by a worker) or encoded bytes."""

    index: int
    pixels: str | bytes
    label: int | None = None
    attributes: np.ndarray | None = None


@dataclasses.dataclass
class ShardPlan:
    name: str
    split: str
    items: list[Item]


@dataclasses.dataclass
class ShardResult:
    file: str
    split: str
    count: int
    bytes: int
    sha256: str
    skipped: list[dict]
    notes: dict[str, int]


@dataclasses.dataclass
class FileDecoding:
    """How workers turn a file into stored bytes (see ``data_prep.images.decode_files``)."""

    size: int
    channels: int = 3
    resample: str = "lanczos"
    encoding: str = "raw"


def _read_state(out: str) -> dict:
    path = storage.join(out, STATE_NAME)
    if not storage.exists(path):
        return {}
    try:
        state = json.loads(storage.read_text(path))
    except (ValueError, UnicodeDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def owned_names(out: str) -> list[str]:
    """Names in ``out`` that an unfinished preparation wrote or planned (from the in-progress marker),
    with the marker itself; plain file names only, so nothing outside ``out`` is ever named."""
    state = _read_state(out)
    if not state and not storage.exists(storage.join(out, STATE_NAME)):
        return []
    names = [*state.get("planned", []), *state.get("shards", {})]
    return sorted({name for name in names if plain_file_name(name)} | {STATE_NAME})


def _load_state(out: str, fingerprint: str) -> tuple[dict[str, dict], set[str]]:
    state = _read_state(out)
    if not state:
        return {}, set()
    if state.get("fingerprint") != fingerprint:
        raise DataError(
            f"{out}: holds an unfinished preparation of other data or settings; pass --overwrite to replace it, "
            "or choose another --out"
        )
    done = state.get("shards", {})
    return done, {name for name in [*state.get("planned", []), *done] if plain_file_name(name)}


def _save_state(out: str, fingerprint: str, done: dict[str, dict], planned: list[str]) -> None:
    state = {"fingerprint": fingerprint, "planned": planned, "shards": done}
    storage.write_text_atomic(storage.join(out, STATE_NAME), json.dumps(state))


def _ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C is handled once, by the main process, which then ends the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _payloads(items: list[Item], decoding: FileDecoding | None, workers: int) -> Iterator[tuple]:
    """``(item, payload, error, notes)`` in item order, decoding file items in worker processes."""
    files = [(position, item.pixels) for position, item in enumerate(items) if isinstance(item.pixels, str)]
    if not files:
        for item in items:
            yield item, item.pixels, None, []
        return
    if decoding is None:
        raise ValueError("items name image files, so write_shards needs `decoding`")
    settings = (decoding.size, decoding.channels, decoding.resample, decoding.encoding)
    chunk = max(1, min(_CHUNK, len(files) // (8 * workers)))
    tasks = [(files[start : start + chunk], *settings) for start in range(0, len(files), chunk)]
    pool = None
    if workers > 1 and len(files) >= _MIN_FILES_FOR_POOL:
        pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)), initializer=_ignore_interrupts)
        results = pool.imap(decode_files, tasks)
    else:
        results = map(decode_files, tasks)
    try:
        decoded: dict[int, tuple] = {}
        for position, item in enumerate(items):
            if not isinstance(item.pixels, str):
                yield item, item.pixels, None, []
                continue
            while position not in decoded:
                decoded.update((result[0], result[1:]) for result in next(results))
            payload, error, notes = decoded.pop(position)
            yield item, payload, error, notes
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _write_one(out: str, plan: ShardPlan, stream: Iterator[tuple], shape: list[int], progress_bar) -> ShardResult:
    import tensorflow as tf

    final = storage.join(out, plan.name)
    temporary = final + ".tmp"
    count, skipped, notes = 0, [], Counter()
    try:
        with tf.io.TFRecordWriter(temporary) as writer:
            for _ in plan.items:
                item, payload, error, item_notes = next(stream)
                progress_bar.update(1)
                if error is not None:
                    skipped.append({"file": item.pixels, "reason": error})
                    continue
                notes.update(item_notes)
                attributes = None if item.attributes is None else item.attributes.tolist()
                writer.write(serialize_example(payload, shape, item.index, item.label, attributes))
                count += 1
        storage.rename(temporary, final)
    except BaseException:
        if storage.exists(temporary):
            storage.remove(temporary)
        raise
    return ShardResult(plan.name, plan.split, count, storage.file_size(final), storage.sha256_of(final), skipped, dict(notes))


def write_shards(
    out: str,
    plans: list[ShardPlan],
    *,
    image_shape: list[int],
    fingerprint: str,
    decoding: FileDecoding | None = None,
    workers: int | None = None,
    progress: bool = True,
    replace_foreign: bool = False,
) -> list[ShardResult]:
    """Write every planned shard not already complete in ``out``; results in plan order.

    ``fingerprint`` identifies the plan (sources and settings): shards recorded under another
    fingerprint are never mixed in (DataError). ``workers`` defaults to the CPU count. A file
    named like a planned shard (or its ``.tmp``) that the in-progress marker does not list is a
    user's: DataError naming it, unless ``replace_foreign``.
    """
    from tqdm.auto import tqdm

    storage.makedirs(out)
    done, ours = _load_state(out, fingerprint)
    pending = []
    for plan in plans:
        record = done.get(plan.name)
        path = storage.join(out, plan.name)
        if record and storage.exists(path) and storage.file_size(path) == record["bytes"]:
            continue
        done.pop(plan.name, None)
        pending.append(plan)
    if not replace_foreign:
        for plan in pending:
            for path in (storage.join(out, plan.name), storage.join(out, plan.name) + ".tmp"):
                if plan.name not in ours and storage.exists(path):
                    raise DataError(
                        f"{path}: already exists and was not written by this preparation; move it away, "
                        "or pass --overwrite to replace it"
                    )
    planned = [plan.name for plan in plans]
    _save_state(out, fingerprint, done, planned)
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    total = sum(len(plan.items) for plan in plans)
    remaining = sum(len(plan.items) for plan in pending)
    bar = tqdm(
        total=total, initial=total - remaining, unit="img", desc="writing shards", disable=not progress,
        file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
    )
    try:
        stream = _payloads([item for plan in pending for item in plan.items], decoding, workers)
        try:
            for plan in pending:
                result = _write_one(out, plan, stream, image_shape, bar)
                done[plan.name] = dataclasses.asdict(result)
                _save_state(out, fingerprint, done, planned)
        finally:
            stream.close()
    finally:
        bar.close()
    return [ShardResult(**done[plan.name]) for plan in plans]
