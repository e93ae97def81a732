"""The console's catalogues, templates, formatting, session cookie and OpenAPI footprint,
without a browser (tests/browser drives the pages themselves)."""

from __future__ import annotations

import importlib.resources
import re
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tokenmall import api, web
from tokenmall.asgi import create_app
from tokenmall.service.codec import cny, dec
from tokenmall.settings import Settings
from tokenmall.store.db import create_db_engine, migrate
from tokenmall.web.i18n import LANGS, LOCALE_DIR, format_money, format_points, translations
from tokenmall.web.session import open_session, seal_session

WEB = Path(web.__file__).parent
SECRET = "a-secret-of-the-settings-0123456789abcdef"


def _extracted() -> set[str]:
    found = set()
    for _fn, _line, msg, _c, _ctx in extract_from_dir(
        str(WEB),
        method_map=[("**.py", "python"), ("templates/**.html", "jinja2")],
        keywords={"_": None, "N_": None, "tr": (2,)},
    ):
        found.add(msg if isinstance(msg, str) else msg[0])
    return found


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_in_each_catalogue_and_nothing_stale(lang: str) -> None:
    with (LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po)
    ids = {m.id for m in catalog if m.id}
    extracted = _extracted()
    assert len(extracted) > 100
    assert ids == extracted
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []
    if lang == "zh_CN":  # Chinese first: every message reads in Chinese (or is a code)
        latin_only = [
            m.id for m in catalog if m.id and not re.search(r"[\u4e00-\u9fff]", str(m.string))
        ]
        assert latin_only == []


# a template's own text, once its tags, expressions and statements are gone, is punctuation
# and the language switch (each language named in itself, as is the custom)
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TAG = re.compile(r"<[^>]*>", re.S)
_ALLOWED = re.compile(r"[\s·|()\-:,.;/=]*")


@pytest.mark.parametrize("template", sorted(p.name for p in (WEB / "templates").glob("*.html")))
def test_no_visible_text_outside_the_catalogue(template: str) -> None:
    source = (WEB / "templates" / template).read_text()
    text = re.sub(r"<script[^>]*>.*?</script>", "", source, flags=re.S)
    text = text.replace(">中文<", "><").replace(">English<", "><")
    text = _TAG.sub(" ", _JINJA.sub(" ", text))
    assert _ALLOWED.fullmatch(text), repr(text.strip())
    # and attributes a person reads (placeholder, title, alt, aria-label) go through _() too
    for attr in re.findall(r'(?:placeholder|title|alt|aria-label)="([^"]*)"', source):
        assert attr.startswith("{{"), attr


def test_chinese_is_the_default_and_english_is_switchable() -> None:
    assert translations("zh_CN").gettext("Orders") == "订单"
    assert translations("en").gettext("Orders") == "Orders"
    assert translations("xx").gettext("Orders") == "订单"


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("1234.56", "¥1,234.56"),
        ("0", "¥0.00"),
        ("-1", "-¥1.00"),
        ("1000000000", "¥1,000,000,000.00"),
        ("0.5", "¥0.50"),
    ],
)
def test_amounts_are_shown_as_yuan(amount: str, shown: str) -> None:
    assert format_money(Decimal(amount)) == shown


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("33.60000000", "33.6"), ("1234567.5", "1,234,567.5"), ("30.00", "30"), ("0E-8", "0")],
)
def test_points_are_shown_in_the_apis_one_format(amount: str, shown: str) -> None:
    assert format_points(Decimal(amount)) == shown
    assert shown.replace(",", "") == dec(Decimal(amount))


@pytest.mark.parametrize(
    "amount", ["12.30", "0.1234", "1234.5", "5", "123456789.0001", "0.00", "-3.5"]
)
def test_money_is_the_apis_cny_behind_a_yuan_sign(amount: str) -> None:
    shown = format_money(Decimal(amount))
    assert shown.replace("¥", "").replace(",", "") == cny(Decimal(amount))


@given(st.integers(min_value=0, max_value=10**14))
def test_money_format_reads_back_as_the_same_fen(fen: int) -> None:
    shown = format_money(Decimal(fen) / 100)
    assert Decimal(shown.lstrip("¥").replace(",", "")) * 100 == fen


def test_a_session_cookie_verifies_only_untouched_and_unexpired() -> None:
    cookie, session = seal_session(
        SECRET,
        tenant_id=7,
        tenant="mall",
        key_id="abc",
        scope="operator",
        merchant_id=None,
        now=1000.0,
    )
    assert open_session(SECRET, cookie, now=1001.0) == session
    assert open_session("another-secret-0123456789abcdef0123", cookie, now=1001.0) is None
    assert open_session(SECRET, cookie, now=session.expires_at + 1.0) is None
    payload, _, mac = cookie.partition(".")
    forged = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac
    assert open_session(SECRET, forged, now=1001.0) is None
    assert open_session(SECRET, "garbage", now=1001.0) is None
    assert open_session(SECRET, "é.é", now=1001.0) is None


def _settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    engine.dispose()
    return Settings(
        db_url=url, admin_token="test-admin-token-0123456789abcdef-xyz", secret_key=SECRET
    )


def test_a_form_too_large_or_unreadable_is_refused(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        form = {"content-type": "application/x-www-form-urlencoded"}
        for body, headers, status in [
            (b"a=" + b"x" * 70_000, form, 413),
            (b"a=1", {"content-type": "application/json"}, 400),
            (b"tenant=\xff\xfe", form, 400),
            (b"&".join(b"f%d=1" % i for i in range(200)), form, 400),
        ]:
            response = client.post("/console/login", content=body, headers=headers)
            assert response.status_code == status, body[:20]
            assert response.headers["content-type"].startswith("text/html")
        # a chunked body (no length) is counted as it arrives
        chunks = iter([b"a=" + b"x" * 40_000, b"x" * 40_000])
        response = client.post("/console/login", content=chunks, headers=form)
        assert response.status_code == 413


def test_the_console_is_not_in_the_openapi_document(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    full = create_app(settings)
    assert any(getattr(r, "path", "").startswith("/console") for r in full.routes)
    assert full.openapi()["paths"] == api.create_app(settings).openapi()["paths"]


@pytest.mark.parametrize(
    "name",
    [
        "static/vendor/htmx/htmx.min.js",
        "static/vendor/htmx/LICENSE",
        "static/vendor/echarts/echarts.common.min.js",
        "static/vendor/echarts/LICENSE",
        "static/console.js",
        "static/console.css",
        "static/member.css",
        "templates/base.html",
        "locale/zh_CN/LC_MESSAGES/messages.po",
        "locale/en/LC_MESSAGES/messages.po",
    ],
)
def test_the_pages_files_are_package_data(name: str) -> None:
    """Read through the package, as an installed wheel serves them (nothing from a CDN)."""
    found = importlib.resources.files("tokenmall.web").joinpath(name)
    assert found.is_file()
    assert len(found.read_bytes()) > 100
