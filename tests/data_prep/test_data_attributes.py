"""data_prep.attributes: FFHQ features CSV, CelebA list_attr_celeba.txt and plain CSV tables."""
import math

import numpy as np
import pytest

from data_prep.attributes import FFHQ_ATTRIBUTES, find_attribute, read_attributes
from data_prep.errors import DataError
from data_files import write_ffhq_csv


def test_ffhq_features_derived_columns_follow_their_definitions(tmp_path):
    rows = write_ffhq_csv(tmp_path / "features.csv", [3, 17, 60001, 5, 9])
    table = read_attributes(str(tmp_path / "features.csv"))
    assert table.source == "ffhq_features" and table.key == "index"
    assert table.names == ["face_detected", *FFHQ_ATTRIBUTES]
    for row in rows[:-1]:
        values = dict(zip(table.names, table.lookup("ignored.png", row["image_index"])))
        assert values["face_detected"] == 1.0
        assert values["smiling"] == float(row["smile"] > 0.5)
        assert values["glasses"] == float(row["glasses"] != "NoGlasses")
        assert values["sunglasses"] == float(row["glasses"] == "Sunglasses")
        assert values["male"] == float(row["gender"] == "male")
        assert values["beard"] == float(row["beard"] > 0.5) and values["moustache"] == float(row["moustache"] > 0.5)
        assert values["bald"] == float(row["bald"] > 0.5)
        for colour in ("black", "brown", "red", "blond"):
            assert values[f"{colour}_hair"] == float(row["hair_color_top"] == colour)
        assert values["age"] == row["age"] and values["smile"] == pytest.approx(row["smile"])
    no_face = dict(zip(table.names, table.lookup("x.png", rows[-1]["image_index"])))
    assert no_face["face_detected"] == 0.0 and all(math.isnan(v) for k, v in no_face.items() if k != "face_detected")
    assert table.lookup("x.png", 4) is None


def test_celeba_attribute_text_joins_by_file_name(tmp_path):
    text = "3\n5_o_Clock_Shadow Smiling Male\n000001.jpg -1  1  1\n000002.jpg  1 -1 -1\n000003.jpg -1 -1  1\n"
    (tmp_path / "list_attr_celeba.txt").write_text(text)
    table = read_attributes(str(tmp_path / "list_attr_celeba.txt"))
    assert table.source == "celeba" and table.key == "filename"
    assert table.names == ["5_o_clock_shadow", "smiling", "male"]
    np.testing.assert_array_equal(table.lookup("/some/dir/000002.jpg", 2), [1.0, 0.0, 0.0])
    assert table.lookup("/elsewhere/000009.jpg", 9) is None


def test_celeba_count_line_that_differs_is_accepted_with_a_warning_giving_both_numbers(tmp_path):
    (tmp_path / "a.txt").write_text("202599\nSmiling Male\n000001.jpg -1 1\n000002.jpg 1 1\n")
    table = read_attributes(str(tmp_path / "a.txt"))
    assert table.warnings == [f"{tmp_path / 'a.txt'}: first line announces 202,599 images but 2 rows follow; "
                              "using the 2 rows"]
    np.testing.assert_array_equal(table.lookup("000002.jpg", None), [1.0, 1.0])
    (tmp_path / "exact.txt").write_text("1\nSmiling\n000001.jpg 1\n")
    assert read_attributes(str(tmp_path / "exact.txt")).warnings == []


def test_a_count_warning_reaches_the_manifest_and_the_report(tmp_path):
    from data_files import random_images, write_images
    from data_prep.prepare import prepare_dataset, report_lines

    write_images(tmp_path / "src", random_images(3, 16), names=["000001", "000002", "000003"], fmt="jpg")
    rows = "".join(f"00000{i}.jpg {1 if i % 2 else -1} 1\n" for i in (1, 2, 3))
    (tmp_path / "list_attr_celeba.txt").write_text("10\nSmiling Male\n" + rows)
    manifest = prepare_dataset("folder", str(tmp_path / "src"), str(tmp_path / "out"), size=32, progress=False,
                               attributes=str(tmp_path / "list_attr_celeba.txt"))
    assert manifest["warnings"] == [f"{tmp_path / 'list_attr_celeba.txt'}: first line announces 10 images but 3 rows "
                                    "follow; using the 3 rows"]
    assert f"warning: {manifest['warnings'][0]}" in report_lines(manifest)


def test_attribute_names_match_case_insensitively(tmp_path):
    (tmp_path / "celeba.txt").write_text("1\n5_o_Clock_Shadow Smiling\n000001.jpg 1 -1\n")
    (tmp_path / "table.csv").write_text("FILE,SMILING,Age\na.png,1,30\n")
    for path in ("celeba.txt", "table.csv"):
        names = read_attributes(str(tmp_path / path)).names
        assert find_attribute(names, "Smiling") == find_attribute(names, " smiling ") == "smiling"
    assert find_attribute(["Smiling", "male"], "SMILING") == "Smiling"
    with pytest.raises(DataError, match=r"unknown attribute 'Bangs'; expected one of \['5_o_clock_shadow', 'smiling'\] "
                                        r"\(case does not matter\)"):
        find_attribute(read_attributes(str(tmp_path / "celeba.txt")).names, "Bangs")
    (tmp_path / "twice.csv").write_text("file,Smiling,smiling\na.png,1,1\n")
    with pytest.raises(DataError, match=r"twice.csv: attribute 'smiling' appears twice \(names match "
                                        r"case-insensitively\); rename one"):
        read_attributes(str(tmp_path / "twice.csv"))


def test_celeba_row_width_is_checked(tmp_path):
    (tmp_path / "b.txt").write_text("1\nSmiling Male\n000001.jpg -1\n")
    with pytest.raises(DataError, match="b.txt: line 3 has 1 values, expected 2"):
        read_attributes(str(tmp_path / "b.txt"))


def test_plain_csv_by_file_name_converts_plus_minus_one_and_blanks(tmp_path):
    (tmp_path / "attrs.csv").write_text("image_id,Smiling,score\na.png,1,0.25\nb.png,-1,\n")
    table = read_attributes(str(tmp_path / "attrs.csv"))
    assert table.key == "filename" and table.names == ["smiling", "score"]
    np.testing.assert_array_equal(table.lookup("x/a.png", None), [1.0, 0.25])
    smiling, score = table.lookup("b.png", None)
    assert smiling == 0.0 and math.isnan(score)


def test_plain_csv_errors_name_the_file(tmp_path):
    (tmp_path / "bad_key.csv").write_text("who,smiling\na,1\n")
    with pytest.raises(DataError, match="bad_key.csv: first column is 'who'"):
        read_attributes(str(tmp_path / "bad_key.csv"))
    (tmp_path / "bad_value.csv").write_text("index,smiling\n1,yes\n")
    with pytest.raises(DataError, match="bad_value.csv: line 2 holds 'yes' where a number is expected"):
        read_attributes(str(tmp_path / "bad_value.csv"))
    with pytest.raises(DataError, match="no such attribute file"):
        read_attributes(str(tmp_path / "absent.csv"))
