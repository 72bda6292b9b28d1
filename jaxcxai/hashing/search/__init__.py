"""Exact top-k Hamming search over millions of binary codes.

topk    `hamming_topk`: chunked, sharded search with exact tie order;
        `pack_words` (+-1 codes to uint32 words), `plan_chunks`
device  steps 1-3 (group minima, radius, group bitmaps) and the device
        candidate selection used on accelerators
host    the exact candidate selection with NumPy (CPU default, and the
        fallback when a query has too many candidate groups)
"""

from jaxcxai.hashing.search.topk import hamming_topk as hamming_topk
from jaxcxai.hashing.search.topk import pack_words as pack_words
from jaxcxai.hashing.search.topk import plan_chunks as plan_chunks

__all__ = ["hamming_topk", "pack_words", "plan_chunks"]
