"""The registry of data sources: the one place that names every dataset kind and what it is.

Each :class:`Source` says whether it holds face ``images`` or ``digits``, its default image side,
how it is split, the sub-command of ``python -m data_prep`` that prepares it, and the one-line
hint shown when its data is missing. Everything else derives from ``SOURCES``:

* ``DATASET_NAMES``: facevae's ``--dataset`` choices (``facevae.config.DATASETS``);
* ``PREPARED``: the kinds ``data_prep.prepare.prepare_dataset`` turns into shards;
* the sub-commands of ``python -m data_prep`` and their ``--help`` lines (``data_prep.prepare_cli``
  and ``data_prep.synthetic_cli``);
* ``prepare_hint`` / ``missing_data_message``: "needs --data-dir; prepare shards with: ...".

Splits (``Source.split``):

* ``ffhq``: FFHQ's own index range, 60000-69999 -> ``validation`` (or ``--validation-indices``;
  a subset without any index in that range falls back to a seeded 10%);
* ``folder``: a split file beside the images (CelebA's ``list_eval_partition.txt``: ``NAME 0|1|2``
  = train/validation/test), else a seeded ``--validation-fraction`` (default 10%);
* ``mnist`` / ``binarized_mnist``: as in the files (train/test; train/validation/test);
* ``synthetic``: generated in memory, faces ``0..train_count-1`` train, the next ones validation.

To add a source: one entry here, its reader, and its branch in ``data_prep.prepare``.
No TensorFlow here (imported by facevae's config).
"""
from __future__ import annotations

import dataclasses

__all__ = [
    "Source",
    "SOURCES",
    "DATASET_NAMES",
    "PREPARED",
    "source",
    "prepare_hint",
    "missing_data_message",
    "commands_text",
]


@dataclasses.dataclass(frozen=True)
class Source:
    """One dataset kind.

    name: the identifier (``--dataset`` value, manifest ``source.kind``), e.g. ``binarized_mnist``.
    content: ``"images"`` (faces, any size) or ``"digits"`` (28x28 grey, never resized).
    default_size: side in px used when ``--size`` is not given.
    channels: stored channels by default (3 = RGB, 1 = grey).
    splits: the splits it produces, in order.
    split: one line on how it is split (shown in ``--help`` and the docs).
    help: the one-line ``--help`` of its ``python -m data_prep`` sub-command.
    description: the longer description of that sub-command.
    hint: the command that prepares it, with placeholders (shown when its data is missing).
    needs_files: False for sources generated in memory (no ``--data-dir``).
    """

    name: str
    content: str
    default_size: int
    channels: int
    splits: tuple[str, ...]
    split: str
    help: str
    description: str
    hint: str
    needs_files: bool = True

    @property
    def command(self) -> str:
        """The sub-command of ``python -m data_prep``: the name with ``-`` for ``_``."""
        return self.name.replace("_", "-")

    @property
    def resizable(self) -> bool:
        """Images are resized to ``--size``; digits keep 28x28."""
        return self.content == "images"


SOURCES: tuple[Source, ...] = (
    Source(
        name="synthetic",
        content="images",
        default_size=64,
        channels=3,
        splits=("train", "validation"),
        split="faces 0..N-1 train, the next ones validation (generated, exactly known attributes)",
        help="write the built-in procedural faces (PNG files and attributes.csv)",
        description="Generate cartoon faces with known attributes and write them as PNG files plus a CSV.",
        hint="none needed (generated in memory); `python -m data_prep synthetic --out DIR --count N` writes them",
        needs_files=False,
    ),
    Source(
        name="ffhq",
        content="images",
        default_size=128,
        channels=3,
        splits=("train", "validation"),
        split="FFHQ's own split: indices 60000-69999 validation (or --validation-indices; a seeded 10% "
              "when no index is in that range)",
        help="FFHQ as published (NNNNN/NNNNN.png or .jpg) -> shards, FFHQ's own split",
        description="Shards from FFHQ's images1024x1024 or thumbnails128x128 folder (or a subset of it).",
        hint="python -m data_prep ffhq --src FFHQ_DIR --out DIR --size 128",
    ),
    Source(
        name="mnist",
        content="digits",
        default_size=28,
        channels=1,
        splits=("train", "test"),
        split="the files' own train (60,000) / test (10,000)",
        help="the four MNIST IDX files (or mnist.npz) -> shards",
        description="Shards from MNIST's IDX files, gzipped or not, or Keras' mnist.npz.",
        hint="python -m data_prep mnist --src MNIST_DIR --out DIR",
    ),
    Source(
        name="binarized_mnist",
        content="digits",
        default_size=28,
        channels=1,
        splits=("train", "validation", "test"),
        split="the files' own train / validation / test (50,000 / 10,000 / 10,000)",
        help="statically binarized MNIST (.amat/.mat) -> shards",
        description="Shards from binarized_mnist_{train,valid,test}.amat or .mat.",
        hint="python -m data_prep binarized-mnist --src BINARIZED_MNIST_DIR --out DIR",
    ),
    Source(
        name="folder",
        content="images",
        default_size=64,
        channels=3,
        splits=("train", "validation", "test"),
        split="a split file beside the images (CelebA's list_eval_partition.txt: 0 train, 1 validation, "
              "2 test), else a seeded --validation-fraction",
        help="any folder of aligned face images -> shards",
        description="Shards from any folder tree of PNG, JPEG or WebP images (e.g. CelebA's img_align_celeba).",
        hint="python -m data_prep folder --src IMAGES_DIR --out DIR --size 64",
    ),
)

DATASET_NAMES: tuple[str, ...] = tuple(entry.name for entry in SOURCES)
PREPARED: tuple[str, ...] = tuple(entry.name for entry in SOURCES if entry.needs_files)
_BY_NAME = {entry.name: entry for entry in SOURCES}


def source(name: str) -> Source:
    """The registry entry of ``name`` (``-`` and ``_`` alike); ValueError naming the known ones."""
    entry = _BY_NAME.get(name.replace("-", "_"))
    if entry is None:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}")
    return entry


def prepare_hint(name: str) -> str:
    """The command that prepares ``name``, e.g. ``python -m data_prep mnist --src MNIST_DIR --out DIR``."""
    return source(name).hint


def missing_data_message(name: str, data_dir: str | None = None) -> str:
    """One line for a dataset whose files are missing: no ``--data-dir``, or one that does not exist."""
    if data_dir:
        return f"--data-dir {data_dir} does not exist; prepare shards with: {prepare_hint(name)}"
    return f"--dataset {name} needs --data-dir; prepare shards with: {prepare_hint(name)}"


def commands_text() -> str:
    """``ffhq|mnist|binarized-mnist|folder``: the sub-commands that prepare shards."""
    return "|".join(source(name).command for name in PREPARED)
