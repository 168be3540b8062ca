"""Shannon entropy in bits per byte: near 8 means compressed or encrypted data."""

import collections
import math


def shannon_of_counts(counts, total: int) -> float:
    if not total:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in counts if c)


def shannon(data: bytes) -> float:
    return shannon_of_counts(collections.Counter(data).values(), len(data))
