"""A liquidity provider that buys forced sales at the lower limit in the pre-open auction.

KRX brokers enter their forced sales (반대매매) in the pre-open auction priced at the day's
lower limit. Each trading day at ``check_at`` (Seoul), before the 09:00 uncross, it looks at
the offers resting at the lower limit and bids there for up to ``max_qty`` of them, within
its cash. What it buys it sells at ``exit_at`` on the next trading day, at market.

    cascade replay unwind.parquet --venue krx --mode relative --broker cfd \\
        --population brokers/examples/unwind-heavy.csv \\
        --strategy strategies/liquidity_provider.py:LiquidityProvider -o runs/lp
"""

from __future__ import annotations

from datetime import date, time

from strategies.base import Strategy, Timer


class LiquidityProvider(Strategy):
    account = "cash"
    cash = 300_000_000
    symbol = ""
    check_at = time(8, 55)
    exit_at = time(10, 0)
    max_qty = 1_000_000

    def on_start(self) -> None:
        self.inst = self.instrument(self.symbol or next(iter(self.host.symbols)))
        self.set_timer("bid", daily=self.check_at)
        self.set_timer("exit", daily=self.exit_at)
        self.bought_on: date | None = None

    def on_timer(self, timer: Timer) -> None:
        if timer.name == "bid" and self.phase(self.inst) == "auction":
            lower, _ = self.limits(self.inst)
            offered = sum(q for p, q in self.book(self.inst, 10).asks if p == lower)
            qty = min(offered, self.max_qty, self.buying_power() // max(lower, 1))
            if lower > 0 and qty > 0:
                self.submit_order(self.inst, "buy", qty, "limit", lower)
        elif timer.name == "exit":
            for order in self.open_orders():
                self.cancel_order(order)
            held = self.position(self.inst)
            if held and self.bought_on is not None and self.bought_on < self.today:
                self.submit_order(self.inst, "sell", held)

    def on_fill(self, fill) -> None:
        if fill.side == "buy":
            self.bought_on = self.today
