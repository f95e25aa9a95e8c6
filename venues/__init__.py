"""Venues: the order book, matching, and each exchange's rules (venues/krx)."""

from venues.kernel import use_versioned_cache

use_versioned_cache()
