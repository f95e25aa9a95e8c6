"""Replay: tapes, loaders, the event loop and its modes, reports and the CLI."""

from venues.kernel import use_versioned_cache

use_versioned_cache()
