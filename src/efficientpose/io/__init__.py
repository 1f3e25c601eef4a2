"""File input and output: images, input lists, videos, prediction files, drawings and atomic writes.

Submodules load on use; this package only names the path type they share.
"""

from __future__ import annotations

import os

PathLike = str | os.PathLike[str]
