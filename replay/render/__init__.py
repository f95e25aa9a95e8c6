"""The render kit of the pages a run and a comparison are read in: ``report.html``
(replay/report.py) and ``comparison.html`` (replay/comparison_page.py).

- :mod:`replay.render.cells`: a value as a table shows it, with its unit;
- :mod:`replay.render.clock`: Seoul time on axes and in tables, and the gaps cut out of an
  axis;
- :mod:`replay.render.thinning`: a long line thinned for drawing, keeping its lows and highs;
- :mod:`replay.render.page`: the self-contained page, its style, tables and packed figures.
"""
