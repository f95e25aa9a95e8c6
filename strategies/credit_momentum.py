"""Leveraged momentum on a 신용융자 (credit) account.

Every ``bar`` it compares the close with the close ``lookback`` bars earlier: a rise of
``entry_move`` or more while flat buys with ``use`` of its buying power (cash / margin rate,
so 2.5x its equity at the 40% down payment of ``krx-credit``), as an IOC up to ``sweep``
above the best ask.
It exits only when a bar closes ``stop_loss`` below its entry: a wide stop, so a gap down
overnight leaves it holding through the close, where the broker values the collateral. It
does not meet margin calls (``meet_calls = False``): below 140% at the close and not topped
up by D+1, the broker sells it in the next pre-open auction at the lower limit. With
``meet_calls`` it deposits enough to stay above the ratio after a further ``call_buffer``
fall, since the broker judges the call again at the deadline's close.

    cascade replay crash.parquet --venue krx --mode relative \\
        --strategy strategies/credit_momentum.py:CreditMomentum -o runs/momentum
"""

from __future__ import annotations

from collections import deque

from strategies.base import Bar, MarginCall, Strategy


class CreditMomentum(Strategy):
    account = "credit"
    cash = 50_000_000
    symbol = ""  # default: the tape's first instrument
    bar = "5min"
    lookback = 6  # bars
    entry_move = 0.005  # +0.5% over the lookback buys
    stop_loss = 0.35  # a bar closing 35% under the entry sells
    use = 0.98  # share of the buying power used
    sweep = 0.03  # the IOC's limit: this far above the best ask
    meet_calls = False  # True: deposit when called, enough for a further fall of call_buffer
    call_buffer = 0.15

    def on_start(self) -> None:
        self.inst = self.instrument(self.symbol or next(iter(self.host.symbols)))
        self.subscribe_bars(self.inst, self.bar)
        self.closes: deque[int] = deque(maxlen=self.lookback + 1)
        self.entry = 0.0
        self.building = False  # buying, bar after bar, until the buying power is used

    def on_bar(self, bar: Bar) -> None:
        self.closes.append(bar.close)
        held = self.position(self.inst)
        if self.open_orders() or self.phase(self.inst) != "continuous":
            return
        if held and bar.close < self.entry * (1 - self.stop_loss):
            self.building = False
            self.submit_order(self.inst, "sell", held)
            return
        if not held and len(self.closes) > self.lookback:
            self.building = bar.close / self.closes[0] - 1 >= self.entry_move
        ask = self.book(self.inst, 1).best_ask
        if self.building and ask:
            limit = self.to_tick(self.inst, ask * (1 + self.sweep))
            qty = int(self.buying_power() * self.use) // limit
            if qty * limit < 0.02 * self.buying_power() / self.use or qty == 0:
                self.building = False  # fully invested
            else:
                self.submit_order(self.inst, "buy", qty, "ioc", limit)

    def on_fill(self, fill) -> None:
        if fill.side == "buy" and not fill.forced:
            held = self.position(self.inst)
            # the average entry over the position
            self.entry = (self.entry * (held - fill.qty) + fill.notional) / held

    def on_margin_call(self, call: MarginCall) -> None:
        self.log(f"margin call: ratio {call.collateral_ratio:.3f}, deadline {call.deadline}")
        if self.meet_calls and call.shortfall > 0:
            # the call is judged again at the deadline's close: leave room for a further fall
            # (value after the fall + cash + deposit) / loan >= the ratio to restore
            value = self.holdings_value() * (1 - self.call_buffer)
            need = self.rules.restore_ratio * self.loan - value - self.balance
            self.deposit(max(call.shortfall, round(need)))
