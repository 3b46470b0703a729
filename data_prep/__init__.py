"""data_prep: readers, generators and tf.data pipelines that turn image data into training-ready shards.

data_prep never imports facevae. ``DATASET_NAMES`` (from ``data_prep.sources``, the registry of
dataset kinds) is the one list of datasets; facevae's ``--dataset`` choices derive from it.
"""
from data_prep.sources import DATASET_NAMES, SOURCES, missing_data_message, prepare_hint, source

__all__ = ["DATASET_NAMES", "SOURCES", "missing_data_message", "prepare_hint", "source"]
