"""The exception types data_prep raises for input a user can fix.

Every one is a :class:`DataError` (a ``ValueError``) whose message is one line naming the file
or flag and the fix, so a command line catches ``DataError`` and prints ``str(error)``:

* :class:`ManifestError`: ``manifest.json`` missing, not JSON, or ill-formed (bad ``image_shape``,
  a shard name that is not a plain file name, ...);
* :class:`ShardError`: a shard listed in the manifest is missing, truncated, altered (size or
  SHA-256 differ from the manifest, e.g. two shards swapped) or unreadable;
* :class:`OutputLockedError`: another writer holds the lock of the output directory.
"""
__all__ = ["DataError", "ManifestError", "ShardError", "OutputLockedError"]


class DataError(ValueError):
    """Bad input data or arguments. The message is one line that names the file or flag and the fix."""


class ManifestError(DataError):
    """A shard directory's ``manifest.json`` is missing or cannot be used; the message names it and the fix."""


class ShardError(DataError):
    """A shard file does not match its manifest or cannot be read; the message names it and the fix."""


class OutputLockedError(DataError):
    """An output directory is locked by another writer; the message names the holder (pid, host)."""
