"""rating_engine.charts: a tenant's three report charts as one inline SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_engine.report.charts import (
    CREDITS_ORANGE,
    DEST_PURPLE,
    POOL_GREEN,
    SPEND_BLUE,
    minutes_text,
    money_text,
    nice_ticks,
    tenant_svg,
)

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "&<>\"' ]]> <script>alert(1)</script> &amp; \x00\x07\ufffe"


def sample(n_days: int = 8, **kw) -> dict:
    d0 = date(2026, 11, 1)
    days = [d0 + timedelta(i) for i in range(n_days)]
    data = {
        "tenant": "contoso",
        "currency": "USD",
        "days": days,
        "spend": [(i * 15_437) % 123_457 for i in range(n_days)],
        "payers": ["domestic:US", "international:US", "credits"],
        "payer_ms": [1_234_567, 300, 5_430_000],
        "destinations": ["United Kingdom", "France - Mobile", "Germany"],
        "destination_spend": [123_456, 99_000, 1],
    }
    data.update(kw)
    return data


def empty() -> dict:
    return sample(0, payers=[], payer_ms=[], destinations=[], destination_spend=[])


def single() -> dict:
    return sample(
        0,
        days=[date(2026, 11, 5)],
        spend=[123_456],
        payers=["credits"],
        payer_ms=[5_430_000],
        destinations=["France"],
        destination_spend=[7],
    )


def zeros() -> dict:
    return sample(
        5,
        spend=[0] * 5,
        payer_ms=[0, 0, 0],
        destination_spend=[0, 0, 0],
    )


def hostile() -> dict:
    return sample(
        3,
        tenant=HOSTILE,
        currency="<€>",
        payers=[HOSTILE, "credits"],
        payer_ms=[1, 2],
        destinations=[HOSTILE, "x" * 200, "日本 - 携帯"],
        destination_spend=[3, 2, 1],
    )


CASES = {
    "normal": sample,
    "empty": empty,
    "single": single,
    "zeros": zeros,
    "hostile": hostile,
    "year": lambda: sample(366),
}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == NS + "svg"
    return root


def panels(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-panel"): g for g in root.iter(NS + "g") if g.get("data-panel")}


def bars(panel: ET.Element) -> list[ET.Element]:
    """The bars: the rects with a tooltip."""
    return [r for r in panel.iter(NS + "rect") if r.find(NS + "title") is not None]


def tips(panel: ET.Element) -> list[str]:
    return [r.find(NS + "title").text for r in bars(panel)]


def texts(panel: ET.Element, anchor: str | None = None) -> list[str]:
    return [
        t.text for t in panel.iter(NS + "text") if anchor is None or t.get("text-anchor") == anchor
    ]


def plot_box(panel: ET.Element) -> tuple[float, ...]:
    return tuple(float(v) for v in panel.get("data-plot").split())


# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_well_formed_svg(case):
    data = CASES[case]()
    svg = tenant_svg(data)
    root = parse(svg)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" ')
    assert root.get("role") == "img"
    assert root.get("viewBox") == "0 0 1120 290"
    assert root.get("width") == "100%"
    assert "contoso" in root.get("aria-label") or case == "hostile"
    assert root.find(NS + "title") is not None
    # one panel of each kind, their bars as many as the inputs
    ps = panels(root)
    assert sorted(ps) == ["destinations", "payers", "spend"]
    assert len(bars(ps["spend"])) == len(data["days"])
    assert len(bars(ps["payers"])) == len(data["payers"])
    assert len(bars(ps["destinations"])) == len(data["destinations"])
    # nothing that could run, load or clash with the page
    low = svg.lower()
    for bad in ("<script", "<style", "href", "url(", " id=", "<foreignobject", "opacity"):
        assert bad not in low.replace("&lt;script", ""), bad


def test_bar_colours_exact():
    root = parse(tenant_svg(sample()))
    ps = panels(root)
    assert {r.get("fill") for r in bars(ps["spend"])} == {SPEND_BLUE} == {"#3b6ea5"}
    assert [r.get("fill") for r in bars(ps["payers"])] == ["#4f9a6b", "#4f9a6b", "#d08c2f"]
    assert (POOL_GREEN, CREDITS_ORANGE) == ("#4f9a6b", "#d08c2f")
    assert {r.get("fill") for r in bars(ps["destinations"])} == {DEST_PURPLE} == {"#8a5aa8"}


def test_exact_tooltips():
    root = parse(
        tenant_svg(
            sample(
                0,
                days=[date(2026, 11, 5), date(2026, 11, 7)],
                spend=[123_456, 5],
                payers=["domestic:US", "international:US", "credits"],
                payer_ms=[299, 300, 5_430_000],
                destinations=["France - Mobile", "Spain"],
                destination_spend=[10_000_000, 0],
            )
        )
    )
    ps = panels(root)
    assert tips(ps["spend"]) == ["2026-11-05: 12.3456 USD", "2026-11-07: 0.0005 USD"]
    assert tips(ps["payers"]) == [
        "domestic:US: 0.00 minutes",
        "international:US: 0.01 minutes",  # 0.005 rounds half-up
        "credits: 90.50 minutes",
    ]
    assert tips(ps["destinations"]) == ["France - Mobile: 1000.0000 USD", "Spain: 0.0000 USD"]


def test_text_formats_are_exact():
    assert money_text(123_456) == "12.3456"
    assert money_text(-5) == "-0.0005"
    assert money_text(10**20 + 1) == "10000000000000000.0001"
    assert minutes_text(5_430_000) == "90.50"
    assert minutes_text(9_135_000) == "152.25"
    assert minutes_text(299) == "0.00"
    assert minutes_text(300) == "0.01"
    assert minutes_text(-300) == "-0.01"


def test_nice_ticks_of_spend_axis():
    # 12.3456 USD: steps of 2.5 up to 12.5
    root = parse(tenant_svg(single()))
    assert texts(panels(root)["spend"], "end") == ["0", "2.5", "5", "7.5", "10", "12.5"]
    assert nice_ticks(123_456, 1, 4, 6) == (125_000, ["0", "2.5", "5", "7.5", "10", "12.5"])


@pytest.mark.parametrize(
    ("top", "unit", "decimals", "expect"),
    [
        (0, 1, 4, (10_000, ["0", "0.2", "0.4", "0.6", "0.8", "1"])),  # all zero: 0..1
        (1, 1, 4, (1, ["0", "0.0001"])),
        (10_000, 1, 4, (10_000, ["0", "0.2", "0.4", "0.6", "0.8", "1"])),
        (10_001, 1, 4, (12_000, ["0", "0.2", "0.4", "0.6", "0.8", "1", "1.2"])),
        (12_001, 1, 4, (12_500, ["0", "0.25", "0.5", "0.75", "1", "1.25"])),
        (
            55_000_000,
            1,
            4,
            (60_000_000, ["0", "1,000", "2,000", "3,000", "4,000", "5,000", "6,000"]),
        ),
        # minutes: unit 600 ms = 0.01 min; 90.5 min
        (5_430_000, 600, 2, (6_000_000, ["0", "20", "40", "60", "80", "100"])),
        (0, 600, 2, (60_000, ["0", "0.2", "0.4", "0.6", "0.8", "1"])),
    ],
)
def test_nice_ticks(top, unit, decimals, expect):
    assert nice_ticks(top, unit, decimals, 6) == expect


def test_nice_ticks_fit_a_narrow_axis():
    top, labels = nice_ticks(10**12, 1, 4, 6, length=200)
    assert top >= 10**12
    assert len(labels) <= 4  # "100,000,000" labels do not fit six in 200 px
    assert labels[0] == "0"


def test_payer_minutes_axis():
    root = parse(tenant_svg(single()))
    ps = panels(root)
    assert texts(ps["payers"], "middle")[1:] == ["minutes", "0", "20", "40", "60", "80", "100"]


def test_empty_panels_say_so():
    root = parse(tenant_svg(empty()))
    ps = panels(root)
    assert "no dated calls" in texts(ps["spend"])
    assert "no paid minutes" in texts(ps["payers"])
    assert "no destinations" in texts(ps["destinations"])


def test_all_zero_and_negative_bars_are_flat():
    for data in (
        zeros(),
        sample(3, spend=[-5, 0, -(10**9)], payer_ms=[-1, 0, -600], destination_spend=[-1, -2, -3]),
    ):
        svg = tenant_svg(data)
        root = parse(svg)
        for name, panel in panels(root).items():
            key = "height" if name == "spend" else "width"
            assert {r.get(key) for r in bars(panel)} == {"0"}
        assert not re.search(r' (x|y|width|height|d)="[^"]*(nan|inf)', svg)
    root = parse(tenant_svg(sample(3, spend=[-5, 0, 1])))
    assert tips(panels(root)["spend"])[0] == "2026-11-01: -0.0005 USD"


def test_hostile_names_escaped_and_kept():
    svg = tenant_svg(hostile())
    root = parse(svg)
    assert "<script" not in svg
    title = root.find(NS + "title").text
    clean = HOSTILE.replace("\x00", "\ufffd").replace("\x07", "\ufffd").replace("\ufffe", "\ufffd")
    assert clean in title and "<€>" in title
    assert clean in root.get("aria-label")
    ps = panels(root)
    assert tips(ps["payers"])[0] == f"{clean}: 0.00 minutes"
    assert tips(ps["destinations"])[1] == "x" * 200 + ": 0.0002 <€>"
    # category labels are cut to 26 characters
    labels = texts(ps["destinations"], "end")
    assert labels[1] == "x" * 25 + "…"
    assert all(len(s) <= 26 for s in labels)


def test_days_labels_and_year():
    root = parse(tenant_svg(sample(366)))
    spend = panels(root)["spend"]
    labels = [t for t in texts(spend, "middle") if re.fullmatch(r"\d\d-\d\d", t)]
    assert labels[0] == "11-01"
    assert 4 <= len(labels) <= 6
    assert "2026–2027" in texts(spend)
    root = parse(tenant_svg(sample(8)))
    labels = [t for t in texts(panels(root)["spend"], "middle") if re.fullmatch(r"\d\d-\d\d", t)]
    assert labels == ["11-01", "11-03", "11-05", "11-07"]


def test_numbers_printed_short():
    svg = tenant_svg(sample(366))
    for attr in ("x", "y", "width", "height", "textLength"):
        for v in re.findall(rf' {attr}="([^"]*)"', svg):
            if v != "100%":  # the root's width
                assert re.fullmatch(r"-?\d+(\.\d{1,2})?", v), (attr, v)
            assert not v.endswith("0") or "." not in v


def test_deterministic():
    assert tenant_svg(sample(366)) == tenant_svg(sample(366))
    assert tenant_svg(hostile()) == tenant_svg(hostile())


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match="spend"):
        tenant_svg(sample(3, spend=[1, 2]))


def test_many_categories_do_not_crash():
    names = [f"dest {i}" for i in range(500)]
    root = parse(tenant_svg(sample(2, destinations=names, destination_spend=list(range(500)))))
    ps = panels(root)
    assert len(bars(ps["destinations"])) == 500
    assert len(texts(ps["destinations"], "end")) < 100  # labels thinned, not piled up


# ---------------------------------------------------------------------------
# properties

money = st.integers(min_value=0, max_value=10**16)


@st.composite
def chart_inputs(draw) -> dict:
    days = sorted(draw(st.sets(st.dates(date(2000, 1, 1), date(2100, 12, 31)), max_size=40)))
    payers = draw(st.lists(st.one_of(st.just("credits"), st.text(max_size=40)), max_size=12))
    dests = draw(st.lists(st.text(max_size=60), max_size=12))
    return {
        "tenant": draw(st.text(max_size=30)),
        "currency": draw(st.sampled_from(["USD", "EUR", "<&>"])),
        "days": days,
        "spend": draw(st.lists(money, min_size=len(days), max_size=len(days))),
        "payers": payers,
        "payer_ms": draw(st.lists(money, min_size=len(payers), max_size=len(payers))),
        "destinations": dests,
        "destination_spend": draw(st.lists(money, min_size=len(dests), max_size=len(dests))),
    }


@settings(max_examples=150, deadline=None)
@given(chart_inputs())
def test_any_input_gives_well_formed_svg_with_bars_inside(data):
    root = parse(tenant_svg(data))
    ps = panels(root)
    eps = 0.011  # coordinates are printed with 2 decimals
    for name, key in (
        ("spend", "spend"),
        ("payers", "payer_ms"),
        ("destinations", "destination_spend"),
    ):
        x0, y0, x1, y1 = plot_box(ps[name])
        rects = bars(ps[name])
        assert len(rects) == len(data[key])
        for r in rects:
            x, y, w, h = (float(r.get(k)) for k in ("x", "y", "width", "height"))
            assert w >= 0 and h >= 0
            assert x0 - eps <= x and x + w <= x1 + eps
            assert y0 - eps <= y and y + h <= y1 + eps
    # the tallest (longest) bar reaches at most the axis top, and the largest
    # value's tooltip is exact
    if data["spend"]:
        i = max(range(len(data["spend"])), key=data["spend"].__getitem__)
        assert tips(ps["spend"])[i].endswith(f": {money_text(data['spend'][i])} {data['currency']}")
