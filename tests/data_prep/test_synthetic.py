"""Tests of the procedural face dataset (data_prep.synthetic) and its CLI (data_prep.synthetic_cli)."""
import csv
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data_prep import synthetic
from data_prep.cli import main
from data_prep.synthetic import (
    ATTRIBUTE_NAMES, BINARY_ATTRIBUTE_NAMES, COLUMN_DESCRIPTIONS, HAIR_COLOURS, SKIN_TONES,
    binary_attributes, generate_faces, render_faces, sample_attributes,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZE = 64


def test_same_seed_gives_identical_bytes_and_other_seeds_differ():
    images, table = generate_faces(24, seed=5)
    again, table_again = generate_faces(24, seed=5)
    assert images.tobytes() == again.tobytes()
    assert all(np.array_equal(table[name], table_again[name]) for name in table)
    other, other_table = generate_faces(24, seed=6)
    assert not np.array_equal(images, other)
    assert not np.array_equal(table["hair_colour"], other_table["hair_colour"])


@pytest.mark.parametrize("size, count, split", [(64, 300, 137), (256, 5, 2), (28, 40, 1)])
def test_face_depends_only_on_seed_and_index(size, count, split):
    whole, table = generate_faces(count, size=size, seed=3)
    head, head_table = generate_faces(split, size=size, seed=3)
    tail, tail_table = generate_faces(count - split, size=size, seed=3, start=split)
    np.testing.assert_array_equal(whole, np.concatenate([head, tail]))
    for name in table:
        np.testing.assert_array_equal(table[name], np.concatenate([head_table[name], tail_table[name]]))
    np.testing.assert_array_equal(table["index"], np.arange(count))
    # A face rendered alone equals the same face rendered among others.
    alone, _ = generate_faces(1, size=size, seed=3, start=count - 1)
    np.testing.assert_array_equal(alone[0], whole[-1])


@pytest.mark.parametrize("size", [28, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_dtypes(size, channels):
    images, table = generate_faces(3, size=size, channels=channels, seed=1)
    assert images.shape == (3, size, size, channels) and images.dtype == np.uint8
    assert images.std() > 20  # a picture, not a flat colour
    assert list(table) == ["index", *ATTRIBUTE_NAMES]
    assert all(column.shape == (3,) for column in table.values())


def test_grayscale_is_the_luminance_of_rgb():
    """Compositing is linear in colour, so rendering the luminance palette = luminance of the RGB render."""
    table = sample_attributes(8, seed=4)
    rgb = render_faces(table, size=48, channels=3).astype(np.float64)
    gray = render_faces(table, size=48, channels=1)[..., 0].astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray - luma).max() <= 1.0  # two roundings to uint8


def test_column_types_and_ranges():
    table = sample_attributes(2000, seed=0)
    for name in ("smiling", "glasses", "long_hair"):
        assert table[name].dtype == bool
    for name in ("hair_colour", "skin_tone", "background", "shirt_colour", "index"):
        assert table[name].dtype == np.int64
    for name in ("face_width", "offset_x", "offset_y", "scale"):
        assert table[name].dtype == np.float32
    assert 0 <= table["face_width"].min() and table["face_width"].max() < 1
    assert -synthetic.OFFSET_RANGE <= table["offset_x"].min() and table["offset_y"].max() < synthetic.OFFSET_RANGE
    assert synthetic.SCALE_RANGE[0] <= table["scale"].min() and table["scale"].max() < synthetic.SCALE_RANGE[1]
    assert set(COLUMN_DESCRIPTIONS) == {"index", *ATTRIBUTE_NAMES}


def test_attributes_are_balanced_and_independent():
    table = sample_attributes(2000, seed=0)
    binary = binary_attributes(table)
    # Standard error of a proportion over 2,000 draws is <= 0.011; allow ~4 of them.
    for name in ("smiling", "glasses", "long_hair", "dark_skin", "wide_face"):
        assert abs(binary[name].mean() - 0.5) < 0.045, name
    for name, classes in (("hair_colour", HAIR_COLOURS), ("skin_tone", SKIN_TONES)):
        shares = np.bincount(table[name], minlength=len(classes)) / 2000
        np.testing.assert_allclose(shares, 1 / len(classes), atol=0.04)
    for name in ("face_width", "offset_x", "scale"):
        low, high = table[name].min(), table[name].max()
        assert abs(table[name].mean() - (low + high) / 2) < 0.03 * (high - low), name
    # Correlations between attributes: the standard error of r is 1/sqrt(2000) = 0.022.
    names = ["smiling", "glasses", "long_hair", "dark_skin", "wide_face", "hair_blond"]
    matrix = np.corrcoef(np.stack([binary[name] for name in names]).astype(float))
    assert np.abs(matrix - np.eye(len(names))).max() < 0.09


def test_binary_attributes():
    table = sample_attributes(200, seed=2)
    binary = binary_attributes(table)
    assert tuple(binary) == BINARY_ATTRIBUTE_NAMES
    assert all(column.dtype == bool and column.shape == (200,) for column in binary.values())
    hair = np.stack([binary[f"hair_{name}"] for name in HAIR_COLOURS], axis=1)
    np.testing.assert_array_equal(hair.sum(axis=1), 1)
    np.testing.assert_array_equal(np.argmax(hair, axis=1), table["hair_colour"])
    np.testing.assert_array_equal(binary["dark_skin"], np.isin(table["skin_tone"], [2, 3]))
    np.testing.assert_array_equal(binary["wide_face"], table["face_width"] >= 0.5)
    assert all(name == name.lower() and " " not in name for name in binary)


def test_render_faces_equals_generate_faces():
    images, table = generate_faces(10, seed=9, start=70)
    np.testing.assert_array_equal(render_faces(table), images)
    without_index = {name: table[name] for name in ATTRIBUTE_NAMES}
    np.testing.assert_array_equal(render_faces(without_index), images)


def _canonical_table(count=12, seed=2):
    """Faces centred at scale 1, so their parts sit where the layout in face_painter says."""
    table = sample_attributes(count, seed=seed)
    table["offset_x"][:] = 0
    table["offset_y"][:] = 0
    table["scale"][:] = 1
    return table


def _difference(table, name, values):
    changed = dict(table, **{name: values})
    before = render_faces(table, size=SIZE).astype(int)
    after = render_faces(changed, size=SIZE).astype(int)
    return np.abs(after - before).max(axis=-1)  # [n, SIZE, SIZE], largest change over channels


def _region(top, bottom, left=0.0, right=1.0):
    """[SIZE, SIZE] mask of pixels whose centres lie in a box given in fractions of the image size."""
    centres = (np.arange(SIZE) + 0.5) / SIZE
    rows = (centres >= top) & (centres <= bottom)
    cols = (centres >= left) & (centres <= right)
    return rows[:, None] & cols[None, :]


# Layout (face_painter docstring) at scale 1 and no offset: head centre y = 0.47, eyes at
# 0.47 - 0.03 = 0.44 with lenses 0.055 + 0.012 frame high; the open mouth from its raised corners
# at 0.61 - 0.04 - 0.01 (rim) down to 0.61 + 0.095 + 0.01, corners at 0.5 +- 0.14 with the rim,
# the closed lips at 0.635 +- 0.026; cheeks at 0.54 +- 0.04, x 0.5 +- (0.15 +- 0.055); the smile
# cuts the eyes below 0.448 (eye whites reach 0.474, x 0.5 +- (0.105 +- 0.05)).
EYE_BAND = _region(0.44 - 0.08, 0.44 + 0.08)
MOUTH_BOX = _region(0.55, 0.73, 0.5 - 0.15, 0.5 + 0.15)  # bounds the smile's mouth change
MOUTH_CORE = _region(0.58, 0.70, 0.5 - 0.12, 0.5 + 0.12)  # inside every face: no hair or frames
CHEEKS = _region(0.49, 0.59, 0.5 - 0.215, 0.5 + 0.215)
LOWER_EYES = _region(0.44, 0.48, 0.5 - 0.16, 0.5 + 0.16)


def test_glasses_change_only_the_eye_band():
    table = _canonical_table()
    diff = _difference(table, "glasses", ~table["glasses"])
    assert not diff[:, ~EYE_BAND].any()
    assert not diff[:, MOUTH_CORE].any()
    assert ((diff > 60).sum(axis=(1, 2)) >= 40).all()  # dark frames: many strongly changed pixels


def test_smile_changes_mouth_cheeks_and_lower_eyelids_only():
    table = _canonical_table()
    diff = _difference(table, "smiling", ~table["smiling"])
    assert not diff[:, ~(MOUTH_BOX | CHEEKS | LOWER_EYES)].any()
    assert not diff[:, :int(0.44 * SIZE)].any()  # brows, upper eyes, hair and frames stay
    assert ((diff[:, MOUTH_BOX] > 60).sum(axis=1) >= 60).all()  # a face-sized mouth change
    assert ((diff[:, CHEEKS & ~MOUTH_BOX] > 10).sum(axis=1) >= 10).all()  # rosy cheeks (faint on tan skin)
    assert (diff[:, LOWER_EYES] > 20).any(axis=1).all()  # raised lower lids


def test_hair_colour_changes_hair_not_eyes_or_mouth():
    table = _canonical_table()
    diff = _difference(table, "hair_colour", (table["hair_colour"] + 2) % len(HAIR_COLOURS))
    top_of_head = int(0.2 * SIZE)  # inside the fringe: head top 0.47 - 0.305, hairline 0.32
    assert (diff[:, top_of_head, SIZE // 2] > 20).all()
    assert not diff[:, MOUTH_CORE].any()
    eye_row, eye_col = int(0.44 * SIZE), int((0.5 + 0.105) * SIZE)
    assert not diff[:, eye_row, eye_col].any()


def test_skin_background_width_and_long_hair_change_their_regions():
    table = _canonical_table()
    cheek = (int(0.52 * SIZE), int(0.36 * SIZE))
    corner = (1, 1)
    skin = _difference(table, "skin_tone", (table["skin_tone"] + 2) % len(SKIN_TONES))
    assert (skin[:, cheek[0], cheek[1]] > 20).all() and not skin[:, corner[0], corner[1]].any()
    background = _difference(table, "background", (table["background"] + 1) % 4)
    assert (background[:, corner[0], corner[1]] > 20).all() and not background[:, cheek[0], cheek[1]].any()
    width = _difference(table, "face_width", (table["face_width"] + 0.5) % 1)
    assert not width[:, _region(0.58, 0.70, 0.42, 0.58)].any()  # the face edge passes near the mouth
    assert ((width > 60).sum(axis=(1, 2)) >= 20).all()
    long_hair = _difference(table, "long_hair", ~table["long_hair"])
    # Just right of each face's edge (half-width 0.22 + 0.07 face_width) at mouth height.
    beside_jaw = ((0.5 + 0.22 + 0.07 * table["face_width"] + 0.025) * SIZE).astype(int)
    assert (long_hair[np.arange(len(beside_jaw)), int(0.62 * SIZE), beside_jaw] > 20).all()
    assert not long_hair[:, :int(0.4 * SIZE)].any()  # the top of the head is the same


@pytest.mark.parametrize("kwargs, message", [
    (dict(size=27), "size=27"), (dict(size=257), "size=257"), (dict(size=64.0), "size=64.0"),
    (dict(channels=2), "channels=2"), (dict(count=-1), "count=-1"), (dict(seed=-3), "seed=-3"),
    (dict(start=-1), "start=-1"),
])
def test_bad_arguments_raise_value_error_echoing_the_value(kwargs, message):
    arguments = dict(count=2) | kwargs
    with pytest.raises(ValueError, match=message):
        generate_faces(**arguments)


def test_render_faces_rejects_bad_tables():
    table = sample_attributes(3)
    with pytest.raises(ValueError, match="lacks columns"):
        render_faces({name: table[name] for name in ATTRIBUTE_NAMES if name != "glasses"})
    with pytest.raises(ValueError, match="hair_colour"):
        render_faces(dict(table, hair_colour=np.array([0, 1, 5])))
    with pytest.raises(ValueError, match="equal length"):
        render_faces(dict(table, scale=np.ones(4, np.float32)))


@pytest.mark.parametrize("channels", [3, 1])
def test_cli_round_trip(tmp_path, capsys, channels):
    out = tmp_path / "faces"
    code = main(["synthetic", "--out", str(out), "--count", "7", "--size", "32", "--seed", "3",
                 "--start", "5", "--channels", str(channels)])
    assert code == 0
    assert "wrote 7 faces" in capsys.readouterr().out
    images, table = generate_faces(7, size=32, seed=3, channels=channels, start=5)
    names = sorted(path.name for path in (out / "images").iterdir())
    assert names == [f"{index:06d}.png" for index in range(5, 12)]
    for image, name in zip(images, names):
        read = np.asarray(Image.open(out / "images" / name))
        np.testing.assert_array_equal(read.reshape(image.shape), image)
    with open(out / "attributes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["index", *ATTRIBUTE_NAMES]
    for name in ("index", *ATTRIBUTE_NAMES):
        values = np.array([float(row[name]) for row in rows]).astype(table[name].dtype)
        np.testing.assert_array_equal(values, table[name])  # floats round-trip exactly
    assert not [path for path in out.rglob("*") if path.name.endswith(".tmp")]


@pytest.mark.parametrize("flags, fragment", [
    (["--count", "0"], "--count"), (["--count", "2", "--size", "300"], "--size"),
    (["--count", "2", "--size", "20"], "[28, 256]"), (["--count", "2", "--channels", "2"], "--channels"),
    (["--count", "2", "--seed", "-1"], "--seed"),
])
def test_cli_bad_values_exit_2_with_one_line(tmp_path, capsys, flags, fragment):
    code = main(["synthetic", "--out", str(tmp_path / "x"), *flags])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and error.startswith("error: ") and fragment in error
    assert not (tmp_path / "x").exists()


@pytest.mark.integration
def test_cli_error_in_a_fresh_process_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data_prep", "synthetic", "--out", str(tmp_path), "--count", "3",
         "--size", "999"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --size must be in [28, 256]. Received: --size=999"]
