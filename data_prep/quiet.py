"""TensorFlow's start-up notices kept off the command lines' stderr: the one home for it, used by every CLI
(``facevae.cli`` for facevae's, ``data_prep.cli`` for data_prep's; data_prep never imports facevae).

Importing TensorFlow 2.21 prints, before its logging is set up (so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    I0000 00:00:... cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU ...
    To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with ...

and at its first look at the devices, on a machine without a GPU,
``E0000 ... cuda_platform.cc:52] failed call to cuInit: ...``; some builds add oneDNN's "oneDNN custom
operations are on" and "Unable to register cuDNN factory" lines.

``quiet_tensorflow_startup()``, called before TensorFlow is imported:

1. sets ``TF_CPP_MIN_LOG_LEVEL=2`` (TensorFlow's own warnings and errors only) unless the user set it.
   ``TF_ENABLE_ONEDNN_OPTS`` is left alone: turning oneDNN off to hide its notice would change speed and numerics;
2. puts a hook on ``import tensorflow``: the first import, and TensorFlow's first listing of the devices (where
   cuInit is called), run with file descriptor 2 sent to a temporary file; then every line of it that is not one
   of the start-up notices above (``is_startup_notice``) is written to stderr, in order.

A user who sets ``TF_CPP_MIN_LOG_LEVEL`` to 0 or 1 asked for TensorFlow's notices: then nothing is filtered.
Nothing happens when TensorFlow is already imported.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

__all__ = ["quiet_tensorflow_startup", "is_startup_notice", "filtered_stderr"]

_NOTICE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|^[IWE]\d{4} [\d:.]+ +\d+ (cudart_stub|cuda_platform|cpu_feature_guard|cuda_dnn|cuda_fft|cuda_blas|"
    r"cuda_executor|computation_placer|port)\.cc:\d+\]"
    r"|^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"
    r"|oneDNN custom operations are on"
)


def is_startup_notice(line: str) -> bool:
    """Whether ``line`` is one of TensorFlow's start-up notices listed in the module docstring."""
    return bool(_NOTICE.search(line.rstrip("\r\n")))


@contextlib.contextmanager
def filtered_stderr():
    """Run the block with file descriptor 2 (C++ and Python writes alike) captured; afterwards write every captured
    line that is not a start-up notice to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    capture = tempfile.TemporaryFile()
    try:
        os.dup2(capture.fileno(), 2)
        yield
    finally:
        try:
            sys.stderr.flush()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", errors="replace")
        capture.close()
        kept = "".join(line for line in text.splitlines(keepends=True) if not is_startup_notice(line))
        if kept:
            sys.stderr.write(kept)
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Executes ``tensorflow`` inside ``filtered_stderr``, then lists the devices there too."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        uninstall()
        module.__loader__ = module.__spec__.loader = self.loader
        with filtered_stderr():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # cuInit; creates no context (multi-worker setup may follow)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the path finder does, with _QuietLoader (which removes this finder when it runs;
    a mere ``importlib.util.find_spec("tensorflow")`` leaves it in place)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or name in sys.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def uninstall() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _QuietFinder)]


def quiet_tensorflow_startup() -> None:
    """Set TF_CPP_MIN_LOG_LEVEL=2 unless set, and filter the first ``import tensorflow`` (module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() in ("0", "1") or "tensorflow" in sys.modules:
        return
    uninstall()
    sys.meta_path.insert(0, _QuietFinder())
