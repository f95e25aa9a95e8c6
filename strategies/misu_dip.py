"""Buy the dip with 미수 (unsettled cash-account margin).

After a close, a bar closing ``dip`` or more below the previous close buys with all the
buying power of a 미수 account: it pays ``margin_rate`` (40% in ``krx-misu``) and the rest is
due on the second trading day after (T+2). It sells at ``take_profit`` above its entry. If
it still holds on the settlement day it either pays the rest from cash it deposits
(``pay_at_settlement = True``), or leaves it unpaid, and the broker sells enough of it in the
D+3 pre-open auction at the lower limit, after which the account buys only with cash for 30
days.

    cascade replay unwind.parquet --venue krx --mode relative \\
        --strategy strategies/misu_dip.py:MisuDip --param dip=0.08 -o runs/dip
"""

from __future__ import annotations

from datetime import date

from strategies.base import Bar, Strategy


class MisuDip(Strategy):
    account = "misu"
    cash = 30_000_000
    symbol = ""
    bar = "1min"
    dip = 0.08  # a close 8% under the previous close buys
    take_profit = 0.05
    sweep = 0.03  # the IOC buy's limit: this far above the best ask
    pay_at_settlement = False

    def on_start(self) -> None:
        self.inst = self.instrument(self.symbol or next(iter(self.host.symbols)))
        self.subscribe_bars(self.inst, self.bar)
        self.prev_close = 0
        self.entry = 0
        self.bought_on: date | None = None
        self.days_held = 0

    def on_bar(self, bar: Bar) -> None:
        held = self.position(self.inst)
        if self.phase(self.inst) != "continuous" or self.open_orders():
            return
        if held and bar.close >= self.entry * (1 + self.take_profit):
            self.submit_order(self.inst, "sell", held)
        elif not held and self.prev_close and bar.close <= self.prev_close * (1 - self.dip):
            ask = self.book(self.inst, 1).best_ask
            if ask:
                limit = self.to_tick(self.inst, ask * (1 + self.sweep))
                qty = self.buying_power() // limit
                if qty > 0:
                    self.submit_order(self.inst, "buy", qty, "ioc", limit)

    def on_fill(self, fill) -> None:
        if fill.side == "buy" and not fill.forced:
            self.entry = round(fill.price)
            self.bought_on = self.today
            self.days_held = 0

    def on_close(self, day: date) -> None:
        self.prev_close = self.last_price(self.inst)
        if self.loan and self.bought_on is not None:
            self.days_held += 1 if day != self.bought_on else 0
            # settlement day (T+2): pay the rest, or leave it to the broker
            if self.days_held == 1 and self.pay_at_settlement:
                # pay before the close of D+2: this close is D+1's, the broker checks D+2's
                need = self.loan - max(self.balance, 0)
                if need > 0:
                    self.deposit(need)
                self.repay()
