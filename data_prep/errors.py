"""The one exception type data_prep raises for input a user can fix."""
__all__ = ["DataError"]


class DataError(ValueError):
    """Bad input data or arguments. The message is one line that names the file or flag and the fix."""
