"""Daily bars (docs/reference/krx-data-formats.md: 5; docs/data-formats.md: daily bars).

The shipped files in tests/data are real: pykrx bars of 33 large caps and of every KOSPI and
KOSDAQ name around 2024-08-05, FinanceDataReader bars of the episodes, the KOSPI index from
Yahoo. The small files written here are fixtures in the documented layouts (made-up
numbers where no real sample covers the layout).
"""

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replay.loaders.daily_bars import (
    COLUMNS,
    INSTRUMENT_COLUMNS,
    code_to_isin,
    instrument_rows,
    isin_check_digit,
    no_trade,
    off_grid,
    parse_code,
    read_bars,
    read_daily_bars,
    reference_instruments,
)
from replay.quality import TapeError
from venues.krx.ticks import is_on_grid

DATA = Path(__file__).parent / "data"
LARGECAPS = DATA / "daily-2024-08-largecaps-pykrx.csv"
EPISODES = DATA / "daily-episodes-fdr.csv"
ALL_KRX = DATA / "daily-2024-08-05-all-krx-pykrx.csv"
KOSPI_YAHOO = DATA / "kospi-index-daily-ohlc.csv"


def raw_rows(path):
    """The file's data rows as dicts of text, read independently of the reader."""
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if not x.startswith("#")]
    return list(csv.DictReader(lines))


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def test_pykrx_file_gives_the_table_with_its_exact_columns_and_types():
    bars = read_bars(LARGECAPS)
    assert tuple(bars.columns) == COLUMNS
    assert bars.dtypes.to_dict() == {
        "code": object, "date": np.dtype("datetime64[ns]"), "open": np.int64,
        "high": np.int64, "low": np.int64, "close": np.int64, "volume": np.int64,
        "value": np.int64, "change": np.float64, "market_cap": np.int64,
        "shares": np.int64, "market": object}
    rows = raw_rows(LARGECAPS)
    assert len(bars) == len(rows) == 330 and bars["code"].nunique() == 33
    assert bars.equals(bars.sort_values(["code", "date"]).reset_index(drop=True))
    # every row equals the file's text: whole won, 등락률 in percent becomes a fraction
    got = bars.set_index(["code", "date"])
    for row in rows:
        bar = got.loc[(row["code"], pd.Timestamp(row["날짜"]))]
        assert [bar.open, bar.high, bar.low, bar.close, bar.volume] == [
            int(row[k]) for k in ("시가", "고가", "저가", "종가", "거래량")]
        assert bar.change == pytest.approx(float(row["등락률"]) / 100, rel=1e-12)
    # not given in this layout: value and market cap -1, shares 0, market unknown
    assert (bars["value"] == -1).all() and (bars["market_cap"] == -1).all()
    assert (bars["shares"] == 0).all() and (bars["market"] == "").all()


def test_finance_data_reader_file_keeps_days_without_trades():
    bars = read_bars(EPISODES)
    rows = raw_rows(EPISODES)
    assert len(bars) == len(rows) == 2959
    got = bars.set_index(["code", "date"])
    for row in rows[::37]:
        bar = got.loc[(row["code"], pd.Timestamp(row["Date"]))]
        assert bar.close == int(row["Close"]) and bar.volume == int(row["Volume"])
        assert bar.change == float(row["Change"])  # already a fraction
    # 영풍제지 and 대양금속 were halted from 2023-10-19: pykrx/FDR write open = high = low = 0
    idle = bars[no_trade(bars)]
    assert set(idle["code"]) == {"006740", "009190"} and len(idle) == 10
    assert (idle[["open", "high", "low", "volume"]] == 0).all().all()
    assert idle.loc[idle["code"] == "006740", "close"].eq(33900).all()


def test_all_krx_cross_section_of_black_monday():
    bars = read_bars(ALL_KRX)
    assert len(bars) == 7951
    day = bars[bars["date"] == "2024-08-05"]
    traded = day[day["volume"] > 0]
    assert len(traded) == 2566  # the README's count of names traded that day
    assert traded["change"].median() == pytest.approx(-0.1033, abs=5e-5)


def test_off_grid_flags_exactly_the_rows_with_a_price_no_order_could_have():
    bars = read_bars(LARGECAPS)
    flagged = off_grid(bars)
    expected = [not all(is_on_grid(int(bars.at[i, c]), bars.at[i, "date"].date())
                        for c in ("open", "high", "low", "close")) for i in bars.index]
    assert flagged.tolist() == expected
    assert set(bars.loc[flagged, "code"]) == {"006400", "012450", "068270", "086520"}
    assert not flagged[bars["code"] == "005930"].any()


def test_off_grid_before_2023_uses_the_market_when_known(tmp_path):
    """Before 2023-01-25 KOSPI's tick above 100,000 was 500, KOSDAQ's 100."""
    text = "code,Date,Open,High,Low,Close,Volume,Market\n"
    text += "000001,2022-03-02,150100,150100,150100,150100,1,KOSDAQ\n"
    text += "000002,2022-03-02,150100,150100,150100,150100,1,KOSPI\n"
    text += "000003,2022-03-02,150100,150100,150100,150100,1,\n"
    bars = read_bars(write(tmp_path / "m.csv", text))
    assert off_grid(bars).tolist() == [False, True, False]


def test_adjusted_rounding_within_a_tick_is_kept_elsewhere_an_error(tmp_path):
    """FDR 006740 2020-03-20 (adjusted, off the grid): high 1111 below the close 1112."""
    bars = read_bars(EPISODES, code="006740").set_index("date")
    assert (bars.at[pd.Timestamp("2020-03-20"), "high"],
            bars.at[pd.Timestamp("2020-03-20"), "close"]) == (1111, 1112)
    on_grid = "Date,Open,High,Low,Close,Volume\n2020-03-20,925,1110,925,1115,10\n"
    with pytest.raises(TapeError) as info:
        read_bars(write(tmp_path / "006740.csv", on_grid))
    assert (info.value.row, info.value.field) == (2, "High")


def test_pykrx_by_date_with_value_and_market_cap_code_from_the_file_name(tmp_path):
    # pykrx get_market_ohlcv(from, to, ticker, adjusted=False) written with df.to_csv()
    text = ("날짜,시가,고가,저가,종가,거래량,거래대금,등락률,시가총액\n"
            "2024-08-02,79000,79600,77700,78000,19284645,1515161617600,-4.21,"
            f"{78000 * 5969782550}\n"
            "2024-08-05,73800,75000,71400,72800,53191620,3889004102500,-6.67,"
            f"{72800 * 5969782550 + 1}\n")
    bars = read_bars(write(tmp_path / "005930.csv", text))
    assert bars["code"].tolist() == ["005930", "005930"]
    assert bars["value"].tolist() == [1515161617600, 3889004102500]
    assert bars["change"].tolist() == pytest.approx([-0.0421, -0.0667])
    # shares from 시가총액 / 종가 only where it divides exactly
    assert bars["shares"].tolist() == [5969782550, 0]


def test_pykrx_by_ticker_takes_its_day_from_a_column_the_argument_or_the_name(tmp_path):
    body = ("000660,152000,158000,146900,147000,5361519,804563240000,-10.40\n"
            "005930,73800,75000,71400,72800,53191620,3889004102500,-6.67\n")
    header = "티커,시가,고가,저가,종가,거래량,거래대금,등락률\n"
    named = read_bars(write(tmp_path / "ohlcv-20240805.csv", header + body))
    assert named["date"].unique().tolist() == [pd.Timestamp("2024-08-05")]
    assert named["code"].tolist() == ["000660", "005930"]
    argued = read_bars(write(tmp_path / "kospi.csv", header + body), date="2024-08-05")
    assert argued.equals(named)
    column = "티커,날짜,시가,고가,저가,종가,거래량,거래대금,등락률\n" + "".join(
        f"{r.split(',', 1)[0]},20240805,{r.split(',', 1)[1]}" for r in body.splitlines(True))
    assert read_bars(write(tmp_path / "x.csv", column)).equals(named)
    with pytest.raises(TapeError, match="no date column"):
        read_bars(tmp_path / "kospi.csv")


def test_fdr_krx_layout_with_amount_marcap_shares(tmp_path):
    text = ("Date,Open,High,Low,Close,Volume,Amount,MarCap,Shares,Change,UpDown,Comp\n"
            "2024-08-05,73800,75000,71400,72800,53191620,3889004102500,434600000000000,"
            "5969782550,-0.0667,2,-5200\n")
    bars = read_bars(write(tmp_path / "KR7005930003.csv", text))
    assert bars.iloc[0][["code", "value", "market_cap", "shares"]].tolist() == [
        "005930", 3889004102500, 434600000000000, 5969782550]


def test_yahoo_floats_with_a_zero_fraction_are_whole_won_and_the_suffix_gives_the_market(
        tmp_path):
    text = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
            "2024-08-02 00:00:00+09:00,79000.0,79600.0,77700.0,78000.0,76543.21,19284645\n"
            "2024-08-05 00:00:00+09:00,73800.0,75000.0,71400.0,72800.0,71443.1,53191620\n")
    bars = read_bars(write(tmp_path / "005930.KS.csv", text))
    assert bars["close"].tolist() == [78000, 72800] and bars["market"].eq("KOSPI").all()
    assert bars["date"].tolist() == [pd.Timestamp("2024-08-02"), pd.Timestamp("2024-08-05")]
    assert read_bars(write(tmp_path / "035720.KQ.csv", text))["market"].eq("KOSDAQ").all()
    with pytest.raises(TapeError) as info:
        read_bars(write(tmp_path / "005930.KS.csv", text.replace("72800.0", "72800.5")))
    assert (info.value.row, info.value.field) == (3, "Close")
    assert "not a whole number of won" in str(info.value)


def test_the_shipped_yahoo_index_file_is_refused_as_stock_bars():
    with pytest.raises(TapeError) as info:
        read_bars(KOSPI_YAHOO, code="000001")
    assert (info.value.row, info.value.field) == (3, "Open")  # the # source line is row 1


def test_codes_and_isins():
    assert isin_check_digit("KR700593000") == 3
    assert code_to_isin("005930") == "KR7005930003"
    assert code_to_isin("000660") == "KR7000660001"
    assert code_to_isin("005935") == ""  # a preferred share: not derivable from the code
    assert parse_code("KR7005930003") == ("005930", "")
    assert parse_code(" 005930.ks ") == ("005930", "KOSPI")
    with pytest.raises(ValueError, match="check digit 4, expected 3"):
        parse_code("KR7005930004")
    with pytest.raises(ValueError, match="leading zeros"):
        parse_code("5930")
    with pytest.raises(ValueError, match="ordinary share"):
        parse_code("KR7005931001")


def test_a_code_column_of_isins_and_code_filters_it(tmp_path):
    text = ("code,Date,Open,High,Low,Close,Volume\n"
            "KR7005930003,2024-08-05,73800,75000,71400,72800,10\n"
            "000660,2024-08-05,152000,158000,146900,147000,10\n")
    path = write(tmp_path / "two.csv", text)
    assert read_bars(path)["code"].tolist() == ["000660", "005930"]
    assert read_bars(path, code="KR7000660001")["code"].tolist() == ["000660"]
    with pytest.raises(TapeError, match="no bars of code 035420"):
        read_bars(path, code="035420")


def test_cp949_file_reads_as_its_utf8_twin(tmp_path):
    text = LARGECAPS.read_text(encoding="utf-8")
    korean = write(tmp_path / "cp949.csv", text, encoding="cp949")
    with pytest.raises(UnicodeDecodeError):
        korean.read_text(encoding="utf-8")
    assert read_bars(korean).equals(read_bars(LARGECAPS))


def test_several_files_and_a_duplicate_across_them(tmp_path):
    first = write(tmp_path / "005930.csv", "Date,Open,High,Low,Close,Volume\n"
                  "2024-08-02,79000,79600,77700,78000,100\n")
    second = write(tmp_path / "000660.csv", "Date,Open,High,Low,Close,Volume\n"
                   "2024-08-02,170000,171000,160000,161000,100\n")
    assert read_bars([first, second])["code"].tolist() == ["000660", "005930"]
    # the shipped files overlap on 2024-07-29..08-09 for the codes they share
    with pytest.raises(TapeError, match="also in .*largecaps-pykrx.csv, row") as info:
        read_bars([LARGECAPS, EPISODES])
    assert info.value.file == str(EPISODES) and info.value.field == "date"


GOOD = "code,Date,Open,High,Low,Close,Volume\n" \
       "005930,2024-08-02,79000,79600,77700,78000,100\n" \
       "005930,2024-08-05,73800,75000,71400,72800,200\n"


@pytest.mark.parametrize("old, new, row, field, why", [
    ("79600", "79,600", 2, None, "8 fields, the header has 7"),
    ("79600", "7960O", 2, "High", "not a number"),
    ("79600", "79600.5", 2, "High", "whole number"),
    (",100\n", ",-100\n", 2, "Volume", "negative"),
    ("79600", "78500", 2, "High", "below the open or the close"),
    ("71400", "73000", 3, "Low", "above the open or the close"),
    ("2024-08-02,79000", "2024-08-02,0", 2, "Open", "zero open"),
    ("2024-08-05", "2024-08-01", 3, "Date", "does not follow"),
    ("2024-08-05", "2024-08-02", 3, "Date", "repeats the date of row 2"),
    ("2024-08-05", "2024-02-30", 3, "Date", "not a calendar date"),
    ("2024-08-05", "2024-08-05 15:30:00", 3, "Date", "not a date"),
    ("005930,2024-08-05", "5930,2024-08-05", 3, "code", "leading zeros"),
    (",78000,", ",,", 2, "Close", "missing value"),
    ("Volume", "Volumen", 1, "Volumen", "unknown column"),
])
def test_bad_bars_name_file_row_and_field(tmp_path, old, new, row, field, why):
    path = write(tmp_path / "bad.csv", GOOD.replace(old, new, 1))
    with pytest.raises(TapeError, match=why) as info:
        read_bars(path)
    assert (info.value.file, info.value.row, info.value.field) == (str(path), row, field)


def test_rows_count_the_comment_lines_as_a_user_does(tmp_path):
    lines = LARGECAPS.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# source:")
    fields = lines[10].split(",")
    fields[1] = "2024-07-3x"  # a bad 날짜 on line 11
    lines[10] = ",".join(fields)
    with pytest.raises(TapeError) as info:
        read_bars(write(tmp_path / "bad.csv", "\n".join(lines) + "\n"))
    assert (info.value.row, info.value.field) == (11, "날짜")


def test_missing_price_column_and_missing_code(tmp_path):
    with pytest.raises(TapeError, match="missing column") as info:
        read_bars(write(tmp_path / "005930.csv", "Date,Open,High,Close,Volume\n"
                        "2024-08-05,1,1,1,1\n"))
    assert (info.value.row, info.value.field) == (None, "Low")
    with pytest.raises(TapeError, match="same field as 'Date'") as info:
        read_bars(write(tmp_path / "005930.csv", "Date,Open,High,Low,Close,Volume,날짜\n"
                        "2024-08-05,1,1,1,1,1,2024-08-05\n"))
    assert (info.value.row, info.value.field) == (1, "날짜")
    with pytest.raises(TapeError, match="no code column"):
        read_bars(write(tmp_path / "bars.csv", GOOD.replace("code,", "").replace(
            "005930,", "")))


def test_read_daily_bars_is_one_series_of_the_same_reader(tmp_path):
    path = write(tmp_path / "samsung.csv", GOOD)
    series = read_daily_bars(path)
    assert series.close.tolist() == [78000.0, 72800.0] and series.volume.tolist() == [100, 200]
    with pytest.raises(TapeError, match="33 codes"):
        read_daily_bars(LARGECAPS)


def test_instrument_rows_base_price_from_the_previous_session_or_from_the_change():
    bars = read_bars(LARGECAPS)
    rows = instrument_rows(bars)
    assert tuple(rows.columns) == INSTRUMENT_COLUMNS
    first = rows.groupby("code").head(1)
    assert (first["prev_close_from"] == "change").all()
    later = rows.drop(first.index)
    assert (later["prev_close_from"] == "bars").all()
    assert later["prev_close"].tolist() == bars["close"].shift().loc[later.index].tolist()
    # every other day: each base price is then derived from 등락률; where the bars are real
    # prices (on the grid) it equals the close of the day in between, which is left out
    odd = bars.iloc[1::2].reset_index(drop=True)
    derived = instrument_rows(odd)
    assert (derived["prev_close_from"] == "change").all()
    real = ~derived["off_grid"].to_numpy() & ~off_grid(bars).iloc[0::2].to_numpy()
    assert real.sum() > 100
    assert derived.loc[real, "prev_close"].tolist() == bars["close"].iloc[0::2][real].tolist()
    assert rows.loc[rows["code"] == "005930", "isin"].eq("KR7005930003").all()


def test_instrument_rows_after_a_gap_and_without_a_change(tmp_path):
    """The FDR episodes jump from 2020-03-31 to 2023-04-10: the first row after the gap takes
    its base price from Change, not from a close three years old."""
    rows = instrument_rows(read_bars(EPISODES, code="005930")).set_index("date")
    assert rows.at[pd.Timestamp("2023-04-10"), "prev_close_from"] == "change"
    text = "Date,Open,High,Low,Close,Volume\n2024-08-05,73800,75000,71400,72800,10\n"
    rows = instrument_rows(read_bars(write(tmp_path / "005930.csv", text)))
    assert rows["prev_close"].isna().all() and rows["prev_close_from"].eq("").all()


def kis_trades(tmp_path, code="005930", price=72000):
    from tests.test_loader_kis import trade_record
    return write(tmp_path / "rec.txt", "".join(
        f"0|H0STCNT0|001|{trade_record(t, price, 5, '1', code=code)}\n"
        for t in ("090001", "090002")))


def test_reference_instruments_fill_the_base_price_market_and_the_real_bar(tmp_path):
    from replay.loaders import load

    loaded = load("kis", [kis_trades(tmp_path)])
    bars = read_bars([LARGECAPS])
    table = reference_instruments(bars, "2024-08-05", loaded.instruments)
    inst = table.by_symbol("005930")
    assert (inst.prev_close_units, inst.ref_date) == (79600, "2024-08-05")
    assert (inst.ref_open_units, inst.ref_high_units, inst.ref_low_units,
            inst.ref_close_units, inst.ref_volume) == (76700, 76900, 70200, 71400, 54608790)
    assert (inst.venue, inst.tick_units) == ("XKRX", 100)  # the rest as the loader made it
    with pytest.raises(ValueError, match="do not cover 2024-08-12"):
        reference_instruments(bars, "2024-08-12", loaded.instruments)
    other = load("kis", [kis_trades(tmp_path, code="950220")])
    with pytest.raises(ValueError, match="no bars of 950220"):
        reference_instruments(bars, "2024-08-05", other.instruments)
    adjusted = load("kis", [kis_trades(tmp_path, code="068270", price=170000)])
    with pytest.raises(ValueError, match="off the KRX tick grid"):
        reference_instruments(bars, "2024-08-05", adjusted.instruments)
    halted = load("kis", [kis_trades(tmp_path, code="006740", price=33900)])
    with pytest.raises(ValueError, match="did not trade"):
        reference_instruments(read_bars(EPISODES), "2023-10-20", halted.instruments)


def test_import_with_bars_writes_the_reference_into_the_tape(tmp_path):
    from typer.testing import CliRunner

    from replay.cli import app
    from replay.tape import Tape

    tape = tmp_path / "day.parquet"
    r = CliRunner().invoke(app, ["data", "import", "--format", "kis",
                                 str(kis_trades(tmp_path)), "--bars", str(EPISODES),
                                 "-o", str(tape)])
    assert r.exit_code == 0, r.output
    assert "replaced by the bars' previous close 79,600" in " ".join(r.output.split())
    inst = Tape(tape).instruments.by_symbol("005930")
    assert (inst.prev_close_units, inst.ref_close_units, inst.ref_volume) == (
        79600, 71400, 54608790)
    r = CliRunner().invoke(app, ["data", "import", "--format", "kis",
                                 str(kis_trades(tmp_path)), "--bars", str(KOSPI_YAHOO),
                                 "-o", str(tape)])
    assert r.exit_code == 2 and "no code column" in " ".join(r.output.split())


def test_instruments_command_writes_one_row_per_code_and_day(tmp_path):
    from typer.testing import CliRunner

    from replay.cli import app

    out = tmp_path / "instruments.csv"
    r = CliRunner().invoke(app, ["data", "instruments", str(LARGECAPS), "--date",
                                 "2024-08-05", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "4 rows have prices off the KRX tick grid" in " ".join(r.output.split())
    table = pd.read_csv(out, dtype={"code": str})
    assert len(table) == 33 and tuple(table.columns) == INSTRUMENT_COLUMNS
    samsung = table.set_index("code").loc["005930"]
    assert (samsung["isin"], samsung["prev_close"], samsung["close"]) == (
        "KR7005930003", 79600, 71400)
    r = CliRunner().invoke(app, ["data", "instruments", str(LARGECAPS), "--date",
                                 "2024-08-04", "-o", str(out)])
    assert r.exit_code == 2 and "no bars on 2024-08-04" in " ".join(r.output.split())


def test_old_tapes_without_the_reference_fields_still_load(tmp_path):
    import json

    import pyarrow.parquet as pq

    from replay.tape import METADATA_KEY, Events, Instrument, InstrumentTable, Tape, write_tape

    table = InstrumentTable([Instrument(0, "005930", ref_close_units=71400)])
    path = write_tape(tmp_path / "t.parquet", Events.empty(0), table)
    assert Tape(path).instruments[0].ref_close_units == 71400  # round trip
    old = pq.read_table(path)
    rows = json.loads(old.schema.metadata[METADATA_KEY])
    rows = [{k: v for k, v in r.items() if not k.startswith("ref_")} for r in rows]
    meta = {**old.schema.metadata, METADATA_KEY: json.dumps(rows).encode()}
    pq.write_table(old.replace_schema_metadata(meta), tmp_path / "old.parquet")
    inst = Tape(tmp_path / "old.parquet").instruments[0]
    assert (inst.ref_date, inst.ref_close_units, inst.ref_volume) == ("", 0, 0)
