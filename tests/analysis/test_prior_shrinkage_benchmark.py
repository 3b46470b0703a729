"""benchmarks/prior_shrinkage.py: the shrinkage list it measures."""
import argparse

import pytest

from benchmark_scripts import load_benchmark


def test_shrinkages_are_numbers_in_the_unit_interval_or_ledoit_wolf():
    bench = load_benchmark("prior_shrinkage")
    assert bench._shrinkages("0, lw,0.2,1") == [0.0, None, 0.2, 1.0]
    for bad, message in (("1.5", "in \\[0, 1\\]"), ("x", "'lw'")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            bench._shrinkages(bad)
