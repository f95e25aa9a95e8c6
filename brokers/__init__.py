"""Brokers: margin accounts, Korean margin rules (신용융자, 미수) and forced liquidation.

Not built yet: the replay engine (replay/, venues/) is what a broker will attach to.
"""
