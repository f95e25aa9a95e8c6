"""The margin-aware broker: rules as data (:mod:`brokers.rules`, presets in
``brokers/presets``), what each kind of rules does (:mod:`brokers.margin`), account
populations (:mod:`brokers.population`, synthesised ones :mod:`brokers.synthetic_population`)
and the liquidation engine (:mod:`brokers.engine`) that attaches to a replay and sells out
breached accounts through the venue. Population files are read in :mod:`replay.loaders`.
docs/brokers.md describes each preset and its rule source."""
