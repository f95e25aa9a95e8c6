"""Listings: each code's market and shares outstanding from the files Korean users hold
(FinanceDataReader StockListing, the KRX 전종목 시세 download, FinanceData/marcap, pykrx
get_market_cap), and daily bars filled from one."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replay.loaders.daily_bars import read_bars
from replay.loaders.listing import read_listing, with_listing
from replay.quality import TapeError

DATA = Path(__file__).parent / "data"
LARGECAPS = DATA / "daily-2024-08-largecaps-pykrx.csv"

# FinanceDataReader fdr.StockListing('KRX').to_csv(...): a pandas index without a name
# first, KOSDAQ GLOBAL for the KOSDAQ's top board, FinanceDataReader's ChagesRatio spelling
FDR = """\ufeff,Code,ISU_CD,Name,Market,Dept,Close,ChangeCode,Changes,ChagesRatio,Open,High,\
Low,Volume,Amount,Marcap,Stocks,MarketId
0,005930,KR7005930003,삼성전자,KOSPI,,71400,2,-8200,-10.3,74800,75000,71400,1,1,\
426242474070000,5969782550,STK
1,196170,KR7196170005,알테오젠,KOSDAQ GLOBAL,우량기업부,300000,2,-100,-0.1,1,1,1,1,1,\
15951627600000,53172092,KSQ
2,278990,KR7278990007,EMB,KONEX,,2000,3,0,0.0,1,1,1,1,1,20000000000,10000000,KNX
"""


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_finance_data_reader_listing_gives_market_shares_name_and_marcap(tmp_path):
    listing = read_listing(write(tmp_path / "krx.csv", FDR))
    assert list(listing.columns) == ["code", "market", "shares", "name", "marcap"]
    assert list(listing["code"]) == ["005930", "196170", "278990"]  # sorted by code
    assert list(listing["market"]) == ["KOSPI", "KOSDAQ", "KONEX"]
    assert listing["shares"].dtype == np.int64
    assert list(listing["shares"]) == [5969782550, 53172092, 10000000]
    assert listing.set_index("code").loc["196170", "name"] == "알테오젠"


def test_krx_download_in_cp949_with_korean_headers(tmp_path):
    # [12001] 전종목 시세 as the KRX Data Marketplace writes it: CP949, every value quoted
    text = ('종목코드,종목명,시장구분,소속부,종가,대비,등락률,시가,고가,저가,거래량,거래대금,'
            '시가총액,상장주식수\n'
            '"005930","삼성전자","KOSPI","","71400","-8200","-10.30","74800","75000",'
            '"71400","54608790","3938712548300","426242474070000","5969782550"\n'
            '"060310","3S","KOSDAQ","중견기업부","2905","10","0.35","2895","2925","2870",'
            '"132202","383247855","134418745265","46271513"\n')
    path = write(tmp_path / "data_0512_20240805.csv", text, "cp949")
    assert path.read_bytes().decode("cp949") == text  # really CP949, not UTF-8
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    listing = read_listing(path).set_index("code")
    assert listing.loc["060310", "market"] == "KOSDAQ"
    assert listing.loc["060310", "shares"] == 46271513
    assert listing.loc["005930", "name"] == "삼성전자"
    assert listing.loc["005930", "marcap"] == 426242474070000


def test_korean_market_names_and_isin_codes(tmp_path):
    text = ("ISU_CD,시장구분,상장주식수\nKR7005930003,유가증권,5969782550\n"
            "KR7035720002,코스닥,1000\nKR7278990007,코넥스,\"1,000,000\"\n")
    listing = read_listing(write(tmp_path / "isin.csv", text)).set_index("code")
    assert listing["market"].to_dict() == {"005930": "KOSPI", "035720": "KOSDAQ",
                                           "278990": "KONEX"}
    assert listing.loc["278990", "shares"] == 1_000_000  # thousands separators read


MARCAP = """Code,Name,Market,Dept,Close,ChangeCode,Changes,ChagesRatio,Open,High,Low,Volume,\
Amount,Marcap,Stocks,MarketId,Rank,Date
005930,삼성전자,KOSPI,,79600,2,-3800,-4.21,1,1,1,1,1,475194690980000,5969782550,STK,1,2024-08-02
196170,알테오젠,KOSDAQ GLOBAL,,1000,1,1,1,1,1,1,1,1,53172092000,53172092,KSQ,2,2024-08-02
005930,삼성전자,KOSPI,,71400,2,-8200,-10.30,1,1,1,1,1,426242474070000,5969782550,STK,1,2024-08-05
196170,알테오젠,KOSDAQ GLOBAL,,900,1,1,1,1,1,1,1,1,47854883700,53172093,KSQ,2,2024-08-05
"""


def test_marcap_dataset_picks_the_latest_day_on_or_before_on(tmp_path):
    path = write(tmp_path / "marcap-2024.csv", MARCAP)
    with pytest.raises(TapeError, match=r"2 dates \(2024-08-02, 2024-08-05\): give on=") as e:
        read_listing(path)
    assert (e.value.file, e.value.field) == (str(path), "Date")
    day = read_listing(path, on="2024-08-05").set_index("code")
    assert day.loc["196170", "shares"] == 53172093  # the 08-05 row, not the 08-02 one
    assert str(day.loc["196170", "date"])[:10] == "2024-08-05"
    sunday = read_listing(path, on="2024-08-04").set_index("code")
    assert sunday.loc["196170", "shares"] == 53172092  # the Friday before
    with pytest.raises(TapeError, match="no date on or before 2024-08-01"):
        read_listing(path, on="2024-08-01")


def test_marcap_gzip_and_parquet_read_as_the_csv(tmp_path):
    csv_path = write(tmp_path / "marcap.csv", MARCAP)
    gz = tmp_path / "marcap-2024.csv.gz"
    gz.write_bytes(gzip.compress(MARCAP.encode()))
    frame = pd.read_csv(csv_path, dtype={"Code": str}, parse_dates=["Date"])
    assert frame["Date"].dtype.kind == "M" and frame["Stocks"].dtype == np.int64
    pq = tmp_path / "marcap-2024.parquet"
    frame.to_parquet(pq)
    want = read_listing(csv_path, on="2024-08-05")
    for other in (gz, pq):
        pd.testing.assert_frame_equal(read_listing(other, on="2024-08-05"), want,
                                      check_dtype=False)


def test_pykrx_market_cap_needs_the_market_given(tmp_path):
    # stock.get_market_cap("20240805", market="KOSDAQ").to_csv(...): no market column
    text = "티커,시가총액,거래량,거래대금,상장주식수\n060310,134418745265,132202,1,46271513\n"
    path = write(tmp_path / "cap-kosdaq.csv", text, "cp949")
    with pytest.raises(TapeError, match="pykrx get_market_cap writes none") as e:
        read_listing(path)
    assert e.value.field == "Market"
    listing = read_listing(path, market="코스닥")
    assert listing[["code", "market", "shares"]].values.tolist() == [
        ["060310", "KOSDAQ", 46271513]]


def test_shares_from_marcap_over_close_only_when_it_divides(tmp_path):
    ok = read_listing(write(tmp_path / "a.csv", "Code,Market,Close,Marcap\n"
                            "005930,KOSPI,71400,426242474070000\n"))
    assert ok["shares"].iat[0] == 5969782550
    path = write(tmp_path / "b.csv", "Code,Market,Close,Marcap\n005930,KOSPI,71400,"
                 "426242474070001\n")
    with pytest.raises(TapeError, match="not a whole number of shares") as e:
        read_listing(path)
    assert (e.value.row, e.value.field) == (2, "Marcap")


@pytest.mark.parametrize(("row", "field", "why"), [
    ("005930,KOSPX,100,STK", "Market", "'KOSPX' is not a market"),
    ("005930,KOSPI,0,STK", "Stocks", "must be a count > 0"),
    ("005930,KOSPI,-5,STK", "Stocks", "cannot be negative"),
    ("005930,KOSPI,1.5,STK", "Stocks", "not a whole number of shares"),
    ("5930,KOSPI,100,STK", "Code", "leading zeros dropped"),
    ("005930,KOSPI,100,KSQ", "MarketId", "'KSQ' is KOSDAQ, but 'Market' says KOSPI"),
])
def test_bad_values_name_the_file_row_and_field(tmp_path, row, field, why):
    path = write(tmp_path / "bad.csv", "# a comment line counts\nCode,Market,Stocks,MarketId\n"
                 f"035720,KOSDAQ,10,KSQ\n{row}\n")
    with pytest.raises(TapeError, match=why) as e:
        read_listing(path)
    assert (e.value.file, e.value.row, e.value.field) == (str(path), 4, field)


def test_unknown_and_missing_columns(tmp_path):
    with pytest.raises(TapeError, match="unknown column") as e:
        read_listing(write(tmp_path / "a.csv", "Code,Market,Stocks,Colour\n005930,KOSPI,1,x\n"))
    assert (e.value.row, e.value.field) == (1, "Colour")
    with pytest.raises(TapeError, match="shares outstanding") as e:
        read_listing(write(tmp_path / "b.csv", "Code,Market,Close\n005930,KOSPI,71400\n"))
    assert e.value.field == "Stocks"


def test_a_code_twice_is_an_error_unless_the_rows_agree(tmp_path):
    same = read_listing(write(tmp_path / "a.csv", "Code,Market,Stocks\n005930,KOSPI,10\n"
                              "005930,KOSPI,10\n"))
    assert len(same) == 1
    path = write(tmp_path / "b.csv", "Code,Market,Stocks\n005930,KOSPI,10\n000660,KOSPI,5\n"
                 "005930,KOSPI,11\n")
    with pytest.raises(TapeError, match=r"code 005930 again \(shares 11\).*row 2 \(shares 10\)"
                       ) as e:
        read_listing(path)
    assert (e.value.row, e.value.field) == (4, "shares")
    # across files too (pykrx writes one file per market)
    first = write(tmp_path / "kospi.csv", "티커,상장주식수\n005930,10\n")
    again = write(tmp_path / "kospi-again.csv", "티커,상장주식수\n000660,5\n005930,10\n")
    assert len(read_listing([first, again], market="KOSPI")) == 2
    other = write(tmp_path / "kospi-other.csv", "티커,상장주식수\n005930,12\n")
    with pytest.raises(TapeError, match=f"also in {first}, row 2") as e:
        read_listing([first, other], market="KOSPI")
    assert (e.value.file, e.value.row) == (str(other), 2)


def listing_for(tmp_path: Path, codes: dict[str, tuple[str, int]]) -> Path:
    lines = ["Code,Market,Stocks"] + [f"{c},{m},{s}" for c, (m, s) in codes.items()]
    return write(tmp_path / "listing.csv", "\n".join(lines) + "\n")


def test_with_listing_fills_market_and_shares_and_reports_missing_codes(tmp_path):
    bars = read_bars(LARGECAPS)
    codes = sorted(set(bars["code"]))
    assert (bars["market"] == "").all() and (bars["shares"] == 0).all()  # pykrx has neither
    given = {c: ("KOSPI", 1000 + i) for i, c in enumerate(codes[:-2])}
    given["086520"] = ("KOSDAQ", 135776152)  # 에코프로
    listing = read_listing(listing_for(tmp_path, given))
    absent = sorted(set(codes) - set(given))
    with pytest.raises(ValueError, match=f"{len(absent)} of the bars' {len(codes)} codes are "
                       f"not in the listing \\({', '.join(absent)}\\)"):
        with_listing(bars, listing)
    merged = with_listing(bars, listing, missing="keep")
    assert merged.attrs["listing_missing"] == tuple(absent)
    assert len(merged) == len(bars)  # nothing dropped
    eco = merged[merged["code"] == "086520"]
    assert set(eco["market"]) == {"KOSDAQ"} and set(eco["shares"]) == {135776152}
    kept = merged[merged["code"].isin(absent)]
    assert (kept["market"] == "").all() and (kept["shares"] == 0).all()
    full = with_listing(bars[~bars["code"].isin(absent)], listing)
    assert full.attrs["listing_missing"] == ()


def test_plan_from_bars_reads_the_listing_market_and_shares(tmp_path):
    from replay.anchor import plan_from_bars

    bars = read_bars(LARGECAPS)
    listing = read_listing(listing_for(tmp_path, {"005930": ("KOSPI", 5969782550),
                                                  "086520": ("KOSDAQ", 135776152)}))
    two = bars[bars["code"].isin(["005930", "086520"])]
    plan = plan_from_bars(with_listing(two, listing), codes=["005930", "086520"])
    got = {n.code: (n.market, n.shares) for n in plan.names}
    assert got == {"005930": ("KOSPI", 5969782550), "086520": ("KOSDAQ", 135776152)}


def test_with_listing_refuses_a_market_the_bars_contradict(tmp_path):
    path = write(tmp_path / "035720.KQ.csv", "Date,Open,High,Low,Close,Volume\n"
                 "2024-08-05,40000,40500,39000,39500,100\n")
    bars = read_bars(path)
    assert bars["market"].iat[0] == "KOSDAQ"  # the Yahoo suffix says so
    listing = read_listing(listing_for(tmp_path, {"035720": ("KOSPI", 10)}))
    with pytest.raises(ValueError, match="035720 is KOSPI in the listing, KOSDAQ in the bars"):
        with_listing(bars, listing)


def test_instruments_command_takes_market_and_shares_from_a_listing(tmp_path):
    from typer.testing import CliRunner

    from replay.cli import app

    bars = read_bars(LARGECAPS)
    codes = sorted(set(bars["code"]))
    listing = listing_for(tmp_path, {c: ("KOSDAQ" if c == "086520" else "KOSPI", 100 + i)
                                     for i, c in enumerate(codes[1:])})
    out = tmp_path / "instruments.csv"
    args = ["data", "instruments", str(LARGECAPS), "--date", "2024-08-05", "--listing",
            str(listing), "-o", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert f"1 of the bars' 33 codes are not in the listing ({codes[0]})" in \
        " ".join(r.output.split())
    assert not out.exists()
    r = CliRunner().invoke(app, args + ["--allow-missing"])
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert "market and shares for 32 of the bars' 33 codes" in said
    assert f"1 codes not in the listing (no market, shares 0): {codes[0]}" in said
    table = pd.read_csv(out, dtype={"code": str}, keep_default_na=False).set_index("code")
    assert table.loc["086520", "market"] == "KOSDAQ"
    assert table.loc["086520", "shares_outstanding"] == 100 + codes.index("086520") - 1
    assert table.loc[codes[0], "market"] == ""
    assert table.loc[codes[0], "shares_outstanding"] == 0


def test_a_descriptive_listing_without_shares_says_what_is_missing(tmp_path):
    # fdr.StockListing('KRX-DESC') and KIND's 상장법인목록 name the market but not the shares
    path = write(tmp_path / "desc.csv", "Code,Name,Market,Sector,Industry,ListingDate\n"
                 "005930,삼성전자,KOSPI,통신 및 방송 장비 제조업,반도체,1975-06-11\n")
    with pytest.raises(TapeError, match="needs the shares outstanding"):
        read_listing(path)
