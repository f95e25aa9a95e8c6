"""Margin rules as data: the presets carry docs/reference/krx.md's numbers, overrides change one
field, bad input is refused with the key and the allowed values."""

from dataclasses import asdict, fields

import pytest
from typer.testing import CliRunner

from brokers.rules import KINDS, PRESETS, Rules, list_presets, load_rules
from replay.cli import app

runner = CliRunner()


def test_krx_credit_preset_carries_the_credit_loan_rules():
    r = load_rules("krx-credit")
    assert r.kind == "credit"
    assert r.valuation == "close"  # krx.md:78 "collateral value at the day's close"
    assert r.maintenance_ratio == 1.40  # krx.md:79 "140% almost everywhere"
    assert r.restore_ratio == 1.40  # krx.md:81 "sized to restore the ratio"
    assert r.size == "restore"
    assert r.grace_days == 1  # krx.md:80 "top-up due by D+1"
    assert r.execution == "preopen_lower_limit"  # krx.md:80-81 "next pre-open auction,
    # priced at the lower limit"
    assert r.margin_rate == 0.40  # krx.md:77 "regulatory floor 40%"
    assert r.loan_term_days == 90  # krx.md:77 "term 90 days"
    assert r.interest_rate == 0.0  # not in krx.md: the user sets the broker's rate
    assert (r.haircut, r.freeze_days, r.call_level, r.liquidation_level) == (0, 0, 0, 0)


def test_krx_misu_preset_carries_the_cash_account_margin_rules():
    r = load_rules("krx-misu")
    assert r.kind == "misu"
    assert r.grace_days == 2  # krx.md:69 "the rest is due on D+2"
    assert r.execution == "preopen_lower_limit"  # krx.md:69-70 "D+3 pre-open auction, at
    # the lower-limit price"
    assert r.size == "restore"  # krx.md:71 "enough to cover the shortfall"
    assert r.haircut == 0.15  # krx.md:71-72 "prior close -15% (common practice)"
    assert r.freeze_days == 30  # krx.md:73 "frozen for 30 calendar days"
    assert r.freeze_threshold == 100_000  # krx.md:73-74 "shortfall exceeded 100,000 won"
    assert r.margin_rate == 0.40  # krx.md:68 "grades 20/30/40/50/60/100%"
    assert r.maintenance_ratio == 0.0  # the trigger is the unpaid settlement, not a ratio


def test_cfd_preset_carries_the_published_call_and_liquidation_levels():
    r = load_rules("cfd")
    assert r.kind == "cfd"
    assert r.margin_rate == 0.40  # krx.md:87 "Minimum margin 40% (2.5x)"
    assert r.call_level == 0.70  # krx.md:88 "margin < 70% after the close"
    assert r.valuation == "close"
    assert r.grace_days == 1  # krx.md:88 "top-up by next day, else sold"
    assert r.liquidation_level == 0.50  # krx.md:88-89 "<= 50% intraday -> sold at once"
    assert r.size == "all"
    assert r.maintenance_ratio == 0.0


def test_instant_preset_differs_from_credit_only_in_timing_and_execution():
    credit, instant = load_rules("krx-credit"), load_rules("instant")
    assert instant.valuation == "last" and instant.grace_days == 0
    assert instant.execution == "market" and instant.size == "all"
    # chosen equal to krx-credit's krx.md:79 "140%" and krx.md:77 "floor 40%"
    assert instant.maintenance_ratio == credit.maintenance_ratio == 1.40
    assert instant.margin_rate == credit.margin_rate == 0.40


def test_list_presets_returns_the_four_presets_in_kind_order():
    presets = list_presets()
    assert [r.name for r in presets] == ["krx-credit", "krx-misu", "cfd", "instant"]
    assert [r.kind for r in presets] == list(KINDS)
    assert all(r.source and r.description for r in presets)


def test_every_numeric_preset_line_cites_its_source():
    for path in PRESETS.glob("*.toml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if value.strip()[:1].isdigit() or value.strip()[:1] == "-":
                assert "#" in value, f"{path.name}: {line!r} has no comment"


def test_an_override_changes_exactly_the_named_field_with_its_type():
    base = load_rules("krx-credit")
    changed = load_rules("krx-credit", ["maintenance_ratio=1.3", "grace_days=2"])
    assert changed.maintenance_ratio == 1.3 and isinstance(changed.maintenance_ratio, float)
    assert changed.grace_days == 2 and isinstance(changed.grace_days, int)
    differ = {f.name for f in fields(Rules) if getattr(base, f.name) != getattr(changed, f.name)}
    assert differ == {"maintenance_ratio", "grace_days"}
    assert load_rules("krx-credit", ["execution=market"]).execution == "market"
    assert load_rules("krx-credit", [" interest_rate = 0.05 "]).interest_rate == 0.05
    assert load_rules("krx-credit", ["maintenance_ratio=2"]).maintenance_ratio == 2.0


def test_unknown_override_key_lists_the_valid_keys():
    with pytest.raises(ValueError, match=r"unknown key 'maintenance'.*maintenance_ratio"):
        load_rules("krx-credit", ["maintenance=1.3"])


def test_malformed_override_is_quoted():
    with pytest.raises(ValueError, match=r"'maintenance_ratio 1\.3'.*key=value"):
        load_rules("krx-credit", ["maintenance_ratio 1.3"])


def test_override_of_the_wrong_type_names_the_field():
    with pytest.raises(ValueError, match=r"grace_days = '1\.5' must be an integer"):
        load_rules("krx-credit", ["grace_days=1.5"])
    with pytest.raises(ValueError, match=r"maintenance_ratio = 'high' must be a number"):
        load_rules("krx-credit", ["maintenance_ratio=high"])


@pytest.mark.parametrize("override, field", [
    ("kind=margin", "kind"),
    ("valuation=open", "valuation"),
    ("execution=twap", "execution"),
    ("size=half", "size"),
    ("maintenance_ratio=0.9", "maintenance_ratio"),
    ("target_ratio=1.2", "target_ratio"),  # below the 1.4 maintenance ratio
    ("margin_rate=0", "margin_rate"),
    ("margin_rate=1.5", "margin_rate"),
    ("grace_days=-1", "grace_days"),
    ("cure_probability=1.5", "cure_probability"),
    ("cure_max_loss=-0.5", "cure_max_loss"),
    ("haircut=0.15", "haircut"),  # a 미수 field: silently unused by credit
    ("maintenance_ratio=nan", "maintenance_ratio"),
])
def test_out_of_range_values_are_refused_naming_field_and_value(override, field):
    with pytest.raises(ValueError, match=rf"{field} = "):
        load_rules("krx-credit", [override])


def test_cfd_liquidation_level_must_lie_below_the_call_level():
    with pytest.raises(ValueError, match="liquidation_level = 0.8"):
        load_rules("cfd", ["liquidation_level=0.8"])


def test_cure_probability_and_cure_max_loss_are_alternatives():
    assert load_rules("krx-credit", ["cure_max_loss=0.2"]).cure_max_loss == 0.2
    assert load_rules("krx-credit", ["cure_probability=0.5"]).cure_probability == 0.5
    with pytest.raises(ValueError, match="not both"):
        load_rules("krx-credit", ["cure_probability=0.5", "cure_max_loss=0.2"])


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match=r"unknown preset 'krx'.*cfd, instant, krx-credit, "
                                         r"krx-misu"):
        load_rules("krx")


def test_a_rules_file_with_an_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(load_rules("krx-credit").to_toml() + "maintenance = 1.3\n")
    with pytest.raises(ValueError, match=r"mine\.toml: unknown key 'maintenance'"):
        load_rules(path)


def test_a_rules_file_with_a_bad_value_names_file_and_field(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(load_rules("krx-credit").to_toml().replace('"close"', '"open"'))
    with pytest.raises(ValueError, match=r"mine\.toml: valuation = 'open'"):
        load_rules(str(path))


def test_a_rules_file_missing_a_required_key_names_it(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "x"\nkind = "credit"\n')
    with pytest.raises(ValueError, match=r"mine\.toml: missing key\(s\) valuation, "
                                         "maintenance_ratio, grace_days"):
        load_rules(path)


def test_to_toml_round_trips_every_preset_and_a_variant(tmp_path):
    variant = load_rules("krx-misu", ['description=a "quoted" 미수 variant', "grace_days=3"])
    for rules in [*list_presets(), variant]:
        path = tmp_path / f"{rules.name}.toml"
        path.write_text(rules.to_toml(), encoding="utf-8")
        assert load_rules(path) == rules
        assert asdict(load_rules(path)) == asdict(rules)


def cascade(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_brokers_lists_the_four_presets():
    for args in (["brokers"], ["brokers", "list"]):
        r = cascade(*args)
        assert r.exit_code == 0, r.output
        for name in ("krx-credit", "krx-misu", "cfd", "instant"):
            assert name in r.output
        assert "preopen_lower_limit" in r.output and "1.4" in r.output


def test_cli_brokers_show_applies_set_overrides():
    r = cascade("brokers", "show", "krx-credit", "--set", "maintenance_ratio=1.3")
    assert r.exit_code == 0, r.output
    assert "maintenance_ratio = 1.3\n" in r.output
    assert 'name = "krx-credit"' in r.output


def test_cli_brokers_show_output_is_a_rules_file(tmp_path):
    # long enough that a wrapped line would break the file
    overrides = ["call_level=0.8", "grace_days=2", "name=cfd-broker-with-a-long-name",
                 "description=" + "a long description " * 10]
    r = cascade("brokers", "show", "cfd", *[a for o in overrides for a in ("--set", o)])
    assert r.exit_code == 0, r.output
    path = tmp_path / "cfd-variant.toml"
    path.write_text(r.output, encoding="utf-8")
    assert load_rules(path) == load_rules("cfd", overrides)


def test_cli_brokers_show_reports_bad_input_in_one_line():
    r = cascade("brokers", "show", "krx-credit", "--set", "maintenance=1.3")
    assert r.exit_code == 2
    assert "unknown key 'maintenance'" in " ".join(r.output.split())
    r = cascade("brokers", "show", "nope")
    assert r.exit_code == 2 and "unknown preset" in r.output
