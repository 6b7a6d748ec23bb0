"""Command-line options: ``BaseOptions`` (shared), ``TrainOptions``, ``TestOptions``.

A bad option value is an :class:`OptionError` (``util/errors.py``), reported at parse time.
"""

from util.errors import OptionError

__all__ = ["OptionError"]
