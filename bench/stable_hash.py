"""src/lib/random.ts stableHash in Python, for the peers that must split records as atelier does."""


def stable_hash(text: str) -> int:
    """FNV-1a over UTF-16 code units (JS charCodeAt), then a murmur3 finish."""
    h = 0x811C9DC5
    units = text.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h ^= units[i] | units[i + 1] << 8
        h = (h * 0x01000193) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h
