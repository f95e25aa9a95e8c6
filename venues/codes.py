"""Every code the replay's arrays hold, each defined once, beside the table of its names.

Compiled kernels read the integer constants (numba folds module-level integers); Python
code that writes a table or a message reads the names from the same place. A test checks
that every constant names its own entry (``STATUS_NAMES[ST_FILLED] == "filled"``...).

Prefixes: ``ST_`` an injected order's status, ``RJ_`` why a venue rejected it, ``SRC_`` who
was the aggressor of a fill or print, ``F_`` a tape row's flags (Databento's names).
"""

from __future__ import annotations

# -- tape rows (docs/tape.md) -------------------------------------------------------------
#: Actions: the letter of the tape's ``action`` column.
ACTIONS = {"A": ord("A"), "C": ord("C"), "D": ord("D"), "M": ord("M"), "T": ord("T"),
           "F": ord("F"), "R": ord("R"), "S": ord("S")}
ADD, CANCEL, DELETE, MODIFY, TRADE, FILL, CLEAR, STATUS = (ACTIONS[c] for c in "ACDMTFRS")
#: Sides: a row's side, an order's side, a print's aggressor (``N``: none).
SIDES = {"B": ord("B"), "A": ord("A"), "N": ord("N")}
BID, ASK, NONE = SIDES["B"], SIDES["A"], SIDES["N"]
#: An aggressor side as a word (a print with no aggressor, an auction's, is "").
AGGRESSOR_NAMES = {BID: "buy", ASK: "sell"}

#: Row flags (bits of the ``flags`` column).
F_LAST = 1 << 7  # the last row of a packet: the book is complete after it
F_TOB = 1 << 6
F_SNAPSHOT = 1 << 5
F_MBP = 1 << 4
F_BAD_TS_RECV = 1 << 3
F_MAYBE_BAD_BOOK = 1 << 2
#: The row belongs to history's own single-price auction uncross (its fills, the reductions
#: of the filled orders and the print). A generic venue applies such rows as they are; the
#: KRX venue computes every uncross itself and skips them (docs/krx-venue.md).
F_AUCTION = 1 << 1

# -- injected orders ------------------------------------------------------------------------
ORDER_TYPE_NAMES = ("market", "limit", "ioc", "fok", "cancel")
MARKET, LIMIT, IOC, FOK, CANCEL_ORDER = range(len(ORDER_TYPE_NAMES))
ORDER_TYPES = {name: code for code, name in enumerate(ORDER_TYPE_NAMES)}

#: What became of an injected order.
STATUS_NAMES = ("pending", "filled", "partial", "resting", "rejected", "cancelled",
                "no_liquidity", "expired")
(ST_PENDING, ST_FILLED, ST_PARTIAL, ST_RESTING, ST_REJECTED, ST_CANCELLED, ST_NO_LIQUIDITY,
 ST_EXPIRED) = range(len(STATUS_NAMES))

#: Why a venue rejected an injected order: (code name, the words a user reads).
_REJECTIONS = (
    ("none", ""),
    ("off_grid", "off the tick grid"),
    ("above_upper", "above the upper price limit"),
    ("below_lower", "below the lower price limit"),
    ("halted", "trading halted (circuit breaker): cancels only"),
    ("closed", "market closed"),
    ("auction_tif", "IOC/FOK orders are not accepted in a single-price auction"),
    ("post_close_price", "post-close orders must be at the closing price"),
    ("sidecar", "program orders on this side suspended (sidecar)"),
    ("fok", "FOK: not enough executable quantity"),
    ("unknown_order", "no such resting order to cancel"),
)
REJECTION_CODES = tuple(code for code, _ in _REJECTIONS)
REASON_NAMES = tuple(text for _, text in _REJECTIONS)
(RJ_NONE, RJ_OFF_GRID, RJ_ABOVE_UPPER, RJ_BELOW_LOWER, RJ_HALTED, RJ_CLOSED, RJ_AUCTION_TIF,
 RJ_POST_CLOSE_PRICE, RJ_SIDECAR, RJ_FOK, RJ_UNKNOWN_ORDER) = range(len(_REJECTIONS))

# -- fills and prints ------------------------------------------------------------------------
#: Who was the aggressor of a fill or print: a row of the tape; an injected order (broker,
#: strategy); historical demand re-applied as an IOC; a historical order crossing the book;
#: a single-price auction uncross (every order filled in it).
SOURCES = ("history", "injected", "reapplied", "history_cross", "auction")
SRC_HISTORY, SRC_INJECTED, SRC_REAPPLIED, SRC_HIST_CROSS, SRC_AUCTION = range(len(SOURCES))
SOURCE_NAMES = dict(enumerate(SOURCES))
