"""Attributes by name or by threshold: facevae.data.labelled_faces.parse_attribute and LabelledFaces.binary."""
import numpy as np
import pytest

from facevae.data.labelled_faces import AttributeDataError, AttributeSpec, LabelledFaces, parse_attribute


def test_parse_attribute_reads_a_name_or_a_comparison():
    assert parse_attribute("smiling") == AttributeSpec("smiling")
    assert parse_attribute(" age >= 40 ") == AttributeSpec("age", ">=", 40.0)
    assert parse_attribute("smile<0.2") == AttributeSpec("smile", "<", 0.2)
    assert str(parse_attribute("age>=40")) == "age>=40" and str(parse_attribute("age")) == "age"
    for bad in ("age>=", "age=>40", "age>=old", ">=40", "age>=nan", "age==40"):
        with pytest.raises(AttributeDataError, match="for example 'age>=40'"):
            parse_attribute(bad)


def _faces():
    """Six faces: a binary column with an unknown value and FFHQ-like ages (years, one unknown)."""
    values = {"glasses": np.array([1, 0, np.nan, 0, 1, 0], float),
              "age": np.array([25, 40, 61, np.nan, 39.5, 70], float)}
    known = {"glasses": np.isfinite(values["glasses"])}
    labels = {"glasses": np.nan_to_num(values["glasses"]) > 0.5}
    return LabelledFaces(np.zeros((6, 4, 4, 3), np.float32), labels, known, values)


def test_binary_compares_any_column_with_its_threshold_and_keeps_unknown_values_unknown():
    faces = _faces()
    labels, known = faces.binary("age>=40")
    np.testing.assert_array_equal(labels, [False, True, True, False, False, True])
    np.testing.assert_array_equal(known, [True, True, True, False, True, True])
    labels, _ = faces.binary("age<40")
    np.testing.assert_array_equal(labels, [True, False, False, False, True, False])
    labels, known = faces.binary("glasses")
    np.testing.assert_array_equal(labels, [True, False, False, False, True, False])
    np.testing.assert_array_equal(known, [True, True, False, True, True, True])


def test_a_continuous_column_named_alone_is_an_error_that_suggests_its_median():
    with pytest.raises(AttributeDataError, match=r"'age' is not 0/1 \(its values run from 25 to 70\); name a "
                                                 r"threshold, for example --attribute 'age>=40'"):
        _faces().binary("age")
    with pytest.raises(AttributeDataError, match="'beard' is not among"):
        _faces().binary("beard")
