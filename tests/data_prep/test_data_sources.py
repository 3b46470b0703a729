"""data_prep.sources: one registry names every dataset; CLI, hints and splits derive from it."""
import ast
import pathlib

import numpy as np
import pytest

import data_prep
from data_prep import cli
from data_prep.errors import DataError
from data_prep.inspection import read_examples
from data_prep.prepare import KINDS, prepare_dataset
from data_prep.sources import DATASET_NAMES, PREPARED, SOURCES, missing_data_message, source
from data_files import random_images, write_images

DATA_PREP = pathlib.Path(data_prep.__file__).parent


def _subcommands():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    return list(action.choices), helps


def test_cli_subcommands_and_their_help_come_from_the_registry():
    names, helps = _subcommands()
    prepared = [source(name).command for name in PREPARED]
    assert names == [*prepared, "synthetic", "inspect"]
    assert prepared == ["ffhq", "mnist", "binarized-mnist", "folder"] and KINDS == PREPARED
    for entry in SOURCES:
        assert helps[entry.command] == entry.help


def test_default_size_and_hints_come_from_the_registry(tmp_path):
    parser = cli.build_parser()
    for entry in SOURCES:
        if entry.resizable:
            args = parser.parse_args([entry.command, "--src", "s", "--out", "o"] if entry.needs_files
                                     else [entry.command, "--out", "o", "--count", "1"])
            assert args.size == entry.default_size
    assert missing_data_message("mnist") == (
        "--dataset mnist needs --data-dir; prepare shards with: python -m data_prep mnist --src MNIST_DIR --out DIR")
    assert missing_data_message("ffhq", "/x") == (
        "--data-dir /x does not exist; prepare shards with: python -m data_prep ffhq --src FFHQ_DIR --out DIR --size 128")
    assert data_prep.DATASET_NAMES == DATASET_NAMES == ("synthetic", "ffhq", "mnist", "binarized_mnist", "folder")
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar'; expected one of \['synthetic'"):
        source("cifar")


def test_facevae_dataset_list_is_the_registry():
    from facevae.config import DATASETS

    assert DATASETS is DATASET_NAMES


def test_data_prep_never_imports_facevae():
    for path in DATA_PREP.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(name.split(".")[0] == "facevae" for name in names), path


def _celeba(root, partition, *, inside=False):
    """CelebA's layout: root/img_align_celeba/NNNNNN.jpg and root/list_eval_partition.txt."""
    names = [f"{i + 1:06d}" for i in range(len(partition))]
    write_images(root / "img_align_celeba", random_images(len(partition), 32), names=names, fmt="jpg")
    text = "".join(f"{name}.jpg {value}\n" for name, value in zip(names, partition))
    (root / ("img_align_celeba" if inside else "") / "list_eval_partition.txt").write_text(text)
    return {split: [int(name) for name, value in zip(names, partition) if value == code]
            for code, split in enumerate(("train", "validation", "test"))}


@pytest.mark.parametrize("inside", [False, True], ids=["beside-the-folder", "in-the-folder"])
def test_celeba_split_file_gives_exactly_its_three_way_counts(tmp_path, inside):
    partition = [0, 0, 1, 0, 2, 0, 1, 2, 0, 0, 2, 0]
    expected = _celeba(tmp_path, partition, inside=inside)
    out = str(tmp_path / "out")
    manifest = prepare_dataset("folder", str(tmp_path / "img_align_celeba"), out, size=32, progress=False)
    assert manifest["splits"] == {"train": 7, "validation": 2, "test": 3}
    assert manifest["split_method"] == "split_file" and "list_eval_partition.txt" in manifest["split_rule"]
    for split, indices in expected.items():
        assert sorted(read_examples(out, split)["index"].tolist()) == indices


def test_split_file_csv_header_explicit_path_and_none(tmp_path):
    expected = _celeba(tmp_path, [0, 1, 2, 0, 0, 0, 0, 0, 0, 0])
    (tmp_path / "list_eval_partition.txt").rename(tmp_path / "parts.csv")
    text = (tmp_path / "parts.csv").read_text().replace(" ", ",")
    (tmp_path / "parts.csv").write_text("image_id,partition\n" + text)
    src = str(tmp_path / "img_align_celeba")
    manifest = prepare_dataset("folder", src, str(tmp_path / "a"), size=32, split_file=str(tmp_path / "parts.csv"),
                               progress=False)
    assert manifest["splits"] == {"train": 8, "validation": 1, "test": 1}
    assert read_examples(str(tmp_path / "a"), "test")["index"].tolist() == expected["test"]
    assert "--split-file" in manifest["command"]
    manifest = prepare_dataset("folder", src, str(tmp_path / "b"), size=32, split_file="none", validation_fraction=0.2,
                               progress=False)
    assert manifest["splits"] == {"train": 8, "validation": 2} and manifest["split_method"] == "seeded_fraction"


def test_split_file_errors_name_the_file_the_line_and_the_fix(tmp_path):
    _celeba(tmp_path, [0, 1, 2, 0])
    src, parts = str(tmp_path / "img_align_celeba"), tmp_path / "list_eval_partition.txt"
    parts.write_text("000001.jpg 0\n000002.jpg 1\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt: no line for 2 of 4 images \(e.g. 000003.jpg, "
                                        r"000004.jpg\); add them, or pass --split-file none"):
        prepare_dataset("folder", src, str(tmp_path / "out"), size=32, progress=False)
    parts.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt: line 2 is '000002.jpg 3'; expected 'FILE_NAME 0\|1\|2'"):
        prepare_dataset("folder", src, str(tmp_path / "out"), size=32, progress=False)
    with pytest.raises(DataError, match=r"absent.txt: no such split file"):
        prepare_dataset("folder", src, str(tmp_path / "out"), size=32, split_file=str(tmp_path / "absent.txt"),
                        progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="--split-file applies to folder"):
        prepare_dataset("ffhq", src, str(tmp_path / "out"), size=32, split_file=str(parts), progress=False)


def test_split_file_images_round_trip_with_their_pixels(tmp_path):
    """Same pixels whichever rule split them: the split file only moves images between splits."""
    _celeba(tmp_path, [0, 1, 2, 1, 0, 0])
    src = str(tmp_path / "img_align_celeba")
    prepare_dataset("folder", src, str(tmp_path / "a"), size=32, progress=False)
    prepare_dataset("folder", src, str(tmp_path / "b"), size=32, split_file="none", validation_fraction=0,
                    progress=False)
    a = [read_examples(str(tmp_path / "a"), split) for split in ("train", "validation", "test")]
    images = np.concatenate([part["image"] for part in a])[np.argsort(np.concatenate([part["index"] for part in a]))]
    b = read_examples(str(tmp_path / "b"), "train")
    np.testing.assert_array_equal(images, b["image"][np.argsort(b["index"])])
