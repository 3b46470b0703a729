"""Attribute tables joined to images: FFHQ features CSV, CelebA's ``list_attr_celeba.txt``, plain CSV.

* FFHQ features (``ffhq_features.csv``, one row per FFHQ index, Microsoft Face API outputs) is
  joined by image index. Usable columns are derived from it (see ``FFHQ_ATTRIBUTES``), e.g.
  ``smiling = smile > 0.5``, ``glasses = glasses != NoGlasses``; rows without a detected face
  have NaN for every attribute except ``face_detected = 0``.
* CelebA's ``list_attr_celeba.txt`` (a count line, a line of 40 names, then ``file v1 ... v40``
  with values +/-1) is joined by file name; values become 0/1 and names lower case
  (``Smiling`` -> ``smiling``). A count line that differs from the rows that follow (a cut or
  edited table) is accepted with a warning giving both numbers (``AttributeTable.warnings``,
  copied into the manifest's ``warnings`` and the report).
* Any CSV whose first column is ``image_index``/``index`` (joined by FFHQ-style index) or
  ``image_id``/``filename``/``file`` (joined by file name) and whose other columns are numbers;
  columns holding only +/-1 become 0/1, blanks become NaN. Kaggle's ``list_attr_celeba.csv`` fits.

Attribute names are matched case-insensitively everywhere (``Smiling`` = ``smiling``): tables
store them in lower case, two columns whose names differ only in case are an error, and
``find_attribute`` looks a name up in any list of names (e.g. a manifest's ``attribute_names``).
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os

import numpy as np

from data_prep.errors import DataError

__all__ = ["AttributeTable", "FFHQ_ATTRIBUTES", "read_attributes", "find_attribute"]

_HAIR = ("black", "blond", "brown", "gray", "red")
# name -> (definition shown in the manifest, function of one CSV row returning a float)
FFHQ_ATTRIBUTES = {
    "smiling": ("smile > 0.5", lambda r: float(float(r["smile"]) > 0.5)),
    "glasses": ("glasses != NoGlasses (reading glasses, sunglasses, goggles)", lambda r: float(r["glasses"] != "NoGlasses")),
    "sunglasses": ("glasses == Sunglasses", lambda r: float(r["glasses"] == "Sunglasses")),
    "male": ("gender == male", lambda r: float(r["gender"] == "male")),
    "beard": ("beard > 0.5", lambda r: float(float(r["beard"]) > 0.5)),
    "moustache": ("moustache > 0.5", lambda r: float(float(r["moustache"]) > 0.5)),
    "bald": ("bald > 0.5", lambda r: float(float(r["bald"]) > 0.5)),
    **{
        f"{colour}_hair": (f"hair_color_top == {colour}", lambda r, c=colour: float(r["hair_color_top"] == c))
        for colour in _HAIR
    },
    "eye_makeup": ("eye_makeup == 1", lambda r: float(r["eye_makeup"] == "1")),
    "lip_makeup": ("lip_makeup == 1", lambda r: float(r["lip_makeup"] == "1")),
    "age": ("age in years (continuous)", lambda r: float(r["age"])),
    "smile": ("smile probability in [0, 1] (continuous)", lambda r: float(r["smile"])),
}
_INDEX_KEYS = ("image_index", "index")
_NAME_KEYS = ("image_id", "filename", "file_name", "file", "image", "name")


@dataclasses.dataclass
class AttributeTable:
    """Attribute values keyed by image index (``key == "index"``) or file name (``key == "filename"``)."""

    path: str
    source: str  # "ffhq_features", "celeba" or "csv"
    key: str
    names: list[str]
    descriptions: dict[str, str]
    rows: dict  # int index or file name -> float32 array of len(names)
    warnings: list[str] = dataclasses.field(default_factory=list)  # one line each, shown in the report

    def key_of(self, path: str, index: int | None) -> int | str | None:
        """The join key of an image: its index, or its file name."""
        return index if self.key == "index" else os.path.basename(path)

    def lookup(self, path: str, index: int | None) -> np.ndarray | None:
        """Values for one image, or None when the table has no row for it."""
        key = self.key_of(path, index)
        return None if key is None else self.rows.get(key)


def _read_ffhq_features(path: str, reader: csv.DictReader) -> AttributeTable:
    names = ["face_detected", *FFHQ_ATTRIBUTES]
    rows = {}
    for line, row in enumerate(reader, start=2):
        try:
            index = int(row["image_index"])
            if row["face_detected"] != "1":
                values = [0.0] + [math.nan] * len(FFHQ_ATTRIBUTES)
            else:
                values = [1.0] + [function(row) for _, function in FFHQ_ATTRIBUTES.values()]
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: line {line} is not a valid FFHQ features row ({error!r})") from None
        rows[index] = np.asarray(values, dtype=np.float32)
    descriptions = {"face_detected": "1 when the Face API found a face (else all others are NaN)"}
    descriptions.update({name: definition for name, (definition, _) in FFHQ_ATTRIBUTES.items()})
    return AttributeTable(path, "ffhq_features", "index", names, descriptions, rows)


def _plus_minus_one_to_binary(values: np.ndarray) -> tuple[np.ndarray, list[bool]]:
    finite = np.where(np.isnan(values), 1.0, values)
    is_pm1 = [bool(np.isin(finite[:, j], (-1.0, 1.0)).all()) for j in range(values.shape[1])]
    converted = values.copy()
    for j, flag in enumerate(is_pm1):
        if flag:
            converted[:, j] = (values[:, j] > 0).astype(np.float32)
    return converted, is_pm1


def _parse_float(path: str, line: int, text: str) -> float:
    text = text.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}: line {line} holds {text!r} where a number is expected") from None


def _check_names(path: str, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if not name:
            raise DataError(f"{path}: attribute column {position + 1} has no name; name every column")
        if name in seen:
            raise DataError(f"{path}: attribute {name!r} appears twice (names match case-insensitively); rename one")
        seen[name] = position


def find_attribute(names, name: str) -> str:
    """The entry of ``names`` equal to ``name`` ignoring case and surrounding spaces (``Smiling`` finds
    ``smiling``); DataError listing the names when there is none."""
    wanted = str(name).strip().lower()
    for candidate in names:
        if candidate.strip().lower() == wanted:
            return candidate
    raise DataError(f"unknown attribute {name!r}; expected one of {list(names)} (case does not matter)")


def _table(path, source, key, names, keys, values, description) -> AttributeTable:
    _check_names(path, names)
    array = np.asarray(values, dtype=np.float32).reshape(len(keys), len(names))
    array, binary = _plus_minus_one_to_binary(array)
    descriptions = {name: (f"{description} (+1 -> 1, -1 -> 0)" if flag else description) for name, flag in zip(names, binary)}
    rows = dict(zip(keys, array))
    if len(rows) != len(keys):
        raise DataError(f"{path}: the same image appears on several rows; keep one row per image")
    return AttributeTable(path, source, key, names, descriptions, rows)


def _read_celeba(path: str, lines: list[str]) -> AttributeTable:
    names = [name.lower() for name in lines[1].split()]
    keys, values = [], []
    for line_number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise DataError(f"{path}: line {line_number} has {len(fields) - 1} values, expected {len(names)}")
        keys.append(fields[0])
        values.append([_parse_float(path, line_number, v) for v in fields[1:]])
    table = _table(path, "celeba", "filename", names, keys, values, "CelebA attribute")
    announced = int(lines[0].split()[0])
    if announced != len(keys):
        table.warnings.append(f"{path}: first line announces {announced:,} images but {len(keys):,} rows follow; "
                              f"using the {len(keys):,} rows")
    return table


def _read_csv(path: str, header: list[str], reader) -> AttributeTable:
    first = header[0].strip().lower()
    if first not in _INDEX_KEYS + _NAME_KEYS:
        raise DataError(
            f"{path}: first column is {header[0]!r}; expected one of {list(_INDEX_KEYS + _NAME_KEYS)} "
            "to join rows to images"
        )
    key = "index" if first in _INDEX_KEYS else "filename"
    names = [name.strip().lower() for name in header[1:]]
    keys, values = [], []
    for line, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != len(header):
            raise DataError(f"{path}: line {line} has {len(fields)} fields, expected {len(header)}")
        if key == "index" and not fields[0].strip().isdigit():
            raise DataError(f"{path}: line {line} has image index {fields[0]!r}; expected a whole number")
        keys.append(int(fields[0]) if key == "index" else fields[0].strip())
        values.append([_parse_float(path, line, v) for v in fields[1:]])
    return _table(path, "csv", key, names, keys, values, f"column of {os.path.basename(path)}")


def read_attributes(path: str) -> AttributeTable:
    """Read an attribute table, recognising its format from its first lines (module docstring)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such attribute file; check --attributes")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        text = handle.read()
    lines = text.splitlines()
    if len(lines) < 2:
        raise DataError(f"{path}: attribute table has no rows")
    if lines[0].strip().isdigit():
        return _read_celeba(path, lines)
    reader = csv.reader(lines)
    header = next(reader)
    if header and header[0] == "image_index" and "face_detected" in header and "hair_color_top" in header:
        return _read_ffhq_features(path, csv.DictReader(lines))
    return _read_csv(path, header, reader)
