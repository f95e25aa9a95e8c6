"""Strategies: the event-driven strategy API and example leveraged strategies.

Not built yet: strategies will trade through the replay's injected-order path.
"""
