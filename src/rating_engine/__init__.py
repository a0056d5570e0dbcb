"""rating-engine: a call-rating stream processor."""

import os

# polars' allocator (jemalloc) keeps freed pages 10 s instead of returning them at once:
# `rate` frees and reallocates each 16 MiB chunk; ~0.3 CPU-s less per 1 M lines. Set
# here because it must be before polars loads; an operator's own setting wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:10000,muzzy_decay_ms:10000")

__version__ = "0.1.0"
