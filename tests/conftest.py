"""Shared fixtures: the tiny training configuration, and paths to ../shared/data (tests that use it skip when it
is absent)."""
import functools
import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tiny_config import make_tiny_config  # noqa: E402  (after the log level is set)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> pathlib.Path:
    """The real-data folder beside the checkout; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(name="tiny", **overrides)``: tests/tiny_config.make_tiny_config rooted in this test's tmp_path."""
    return functools.partial(make_tiny_config, tmp_path)
