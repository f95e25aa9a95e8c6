"""The book's public kernels for a client that owns its flow (the synthetic generator):
re-pricing an order, reading an order and the best prices, reading the fills of a walk."""

from venues.book import (
    BookState,
    alloc_order,
    best_price,
    enqueue,
    level_index,
    order_fields,
    requeue,
)
from venues.codes import (
    ASK,
    BID,
    SRC_HISTORY,
)
from venues.matching import (
    Reports,
    clear_fills,
    fill_at,
    fill_count,
    match,
)


def _book():
    book = BookState(1, order_capacity=16)
    book.set_ladder(0, 100, 200, 10)
    return book


def _add(book, oid, side, price, size):
    S = book.S
    row = alloc_order(S)
    enqueue(S, row, oid, 0, side, price, size, size, -1, oid,
            level_index(S, 0, side, price))
    return row


def _sweep(book, side, qty):
    """Fills of an aggressor on ``side`` for ``qty``: (price, size, maker id) rows."""
    reports = Reports(16)
    match(book.S, reports.OUT, 0, side, -1, qty, 0, -1, SRC_HISTORY, False, -1)
    fills = [tuple(int(x) for x in fill_at(reports.OUT, j))
             for j in range(fill_count(reports.OUT))]
    clear_fills(reports.OUT)
    assert fill_count(reports.OUT) == 0
    return fills


def test_best_price_is_zero_on_an_empty_side_and_the_best_level_otherwise():
    book = _book()
    assert best_price(book.S, 0, BID) == best_price(book.S, 0, ASK) == 0
    _add(book, 1, BID, 140, 5)
    _add(book, 2, BID, 150, 5)
    _add(book, 3, ASK, 170, 5)
    _add(book, 4, ASK, 160, 5)
    assert (best_price(book.S, 0, BID), best_price(book.S, 0, ASK)) == (150, 160)


def test_order_fields_reads_id_side_price_and_size():
    book = _book()
    row = _add(book, 7, ASK, 180, 33)
    assert tuple(int(x) for x in order_fields(book.S, row)) == (7, ASK, 180, 33)


def test_requeue_moves_an_order_to_the_back_of_its_new_level_and_the_best_with_it():
    book = _book()
    first = _add(book, 1, BID, 150, 10)
    _add(book, 2, BID, 140, 20)
    _add(book, 3, BID, 140, 30)
    requeue(book.S, first, 140)  # the best level empties: the best moves down to 140
    assert best_price(book.S, 0, BID) == 140
    assert int(order_fields(book.S, first)[2]) == 140
    # time priority at 140: the re-priced order comes after the two already there
    assert _sweep(book, ASK, 45) == [(140, 20, 2), (140, 25, 3)]
    assert _sweep(book, ASK, 100) == [(140, 5, 3), (140, 10, 1)]
    assert best_price(book.S, 0, BID) == 0


def test_requeue_to_a_better_price_makes_it_the_best():
    book = _book()
    _add(book, 1, ASK, 160, 10)
    moved = _add(book, 2, ASK, 190, 10)
    requeue(book.S, moved, 150)
    assert best_price(book.S, 0, ASK) == 150
    assert _sweep(book, BID, 15) == [(150, 10, 2), (160, 5, 1)]
