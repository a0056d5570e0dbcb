"""report.html in headless Chromium (Debian's ``chromium`` package): the page
renders with its charts (non-blank screenshot holding the charts' bar
colours) and without a console error or a failed load.

Skipped when /usr/bin/chromium is missing, except in CI (``CI`` set), where
it fails: CI installs it with apt."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from rating_engine.report import main

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"

# bar colours of charts.tenant_svg
SPEND_BLUE = (0x3B, 0x6E, 0xA5)
POOL_GREEN = (0x4F, 0x9A, 0x6B)
CREDITS_ORANGE = (0xD0, 0x8C, 0x2F)
DEST_PURPLE = (0x8A, 0x5A, 0xA8)


def _chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (CI installs Debian's chromium package)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


def _record(**kw) -> str:
    base = {
        "tenant_id": "contoso",
        "user_id": "ann@contoso.com",
        "kind": "user_outbound",
        "status": "rated",
        "reason": None,
        "start": "2026-11-24T10:00:00.000Z",
        "duration_seconds": 120,
        "billed_seconds": 60,
        "destination": "United Kingdom",
        "country": "GB",
        "number_type": "geographic",
        "charge": "0.0234",
        "currency": "USD",
        "pool": None,
        "pool_seconds": 0,
        "disconnected": None,
    }
    base.update(kw)
    return json.dumps(base)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    lines = []
    for day in range(1, 11):
        lines.append(
            _record(
                start=f"2026-11-{day:02d}T09:00:00.000Z",
                charge=f"{day}.5000",
                billed_seconds=600,
                destination="France - Mobile",
                country="FR",
                number_type="mobile",
            )
        )
        lines.append(
            _record(
                start=f"2026-11-{day:02d}T10:00:00.000Z",
                charge="0.2500",
                pool="international:US",
                pool_seconds=300,
                duration_seconds=360,
            )
        )
    lines.append("this line is not JSON")
    src = tmp / "charges.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp / "out"
    assert main([str(src), "--out", str(out)]) == 0
    return out / "report.html"


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    chromium = _chromium()
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--mute-audio",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp)}
    )


def _console_errors(stderr: str) -> list[str]:
    """Console messages and failed loads in Chromium's log. Its log does not
    give a console message's level, and report.html has no script at all,
    so any console message counts as an error."""
    return [
        ln
        for ln in stderr.splitlines()
        if ":CONSOLE" in ln
        or "Uncaught" in ln
        or "Failed to load resource" in ln
        or "net::ERR_" in ln
    ]


def test_report_renders_with_charts(report_html, tmp_path):
    shot = tmp_path / "shot.png"
    proc = _run(
        [
            "--window-size=1400,2200",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={shot}",
            report_html.as_uri(),
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    assert _console_errors(proc.stderr) == []

    from PIL import Image

    with Image.open(shot) as img:
        assert img.height >= 2000 and img.width >= 1300
        raw = img.convert("RGB").tobytes()
    rgb = list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
    colours = set(rgb[::7])
    assert len(colours) > 50, "screenshot looks blank"
    # the charts were drawn: their bar colours are on screen
    present = set(rgb)
    for colour in (SPEND_BLUE, POOL_GREEN, CREDITS_ORANGE, DEST_PURPLE):
        assert any(
            all(abs(a - b) <= 3 for a, b in zip(colour, px, strict=True)) for px in present
        ), colour


def test_report_dom_has_tables_and_charts(report_html, tmp_path):
    proc = _run(["--enable-logging=stderr", "--v=0", "--dump-dom", report_html.as_uri()], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<h1>PSTN usage report</h1>" in dom
    assert dom.count('<figure class="chart"><svg') == 1  # one tenant, one chart figure
    for table in ("funding", "summary", "by_day", "by_payer", "top_destinations", "bad_lines"):
        assert f'data-table="{table}"' in dom, table
    assert "this line is not JSON" not in dom and "invalid_json" in dom
    assert _console_errors(proc.stderr) == []


def test_skips_or_fails_without_chromium(monkeypatch):
    """The guard itself: a missing binary skips locally and fails in CI."""
    monkeypatch.setattr(os, "access", lambda *a: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        _chromium()
