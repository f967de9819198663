"""Posed and shaped Anny bodies."""

from __future__ import annotations

import functools


@functools.cache
def load_anny():
    """The Anny full-body model (first build compiles a Warp kernel: ~1-2 min, then cached)."""
    import anny

    return anny.Anny()
