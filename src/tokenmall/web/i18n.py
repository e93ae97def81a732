"""Languages of the pages: Chinese first, English on request; money and dates as people read
them.

The catalogues are the ``.po`` files under ``locale/`` (msgids in English, as Babel extracts
them from the templates and from this package's Python): Babel compiles each in memory once
per process, so no compiled ``.mo`` file is kept in the repository to drift from its source.
A visitor's language is ``?lang=`` (remembered in a cookie) or the cookie, else ``zh_CN``.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from tokenmall.service.codec import dec

__all__ = [
    "DEFAULT_LANG",
    "LANGS",
    "N_",
    "format_date",
    "format_datetime",
    "format_money",
    "format_points",
    "format_price",
    "translations",
]

LOCALE_DIR: Final = Path(__file__).parent / "locale"
DEFAULT_LANG: Final = "zh_CN"
LANGS: Final = ("zh_CN", "en")


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Marks a message for extraction; it is translated where it is shown."""
    return message


@cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalogue of ``lang`` (one of LANGS; anything else: the default)."""
    if lang not in LANGS:
        lang = DEFAULT_LANG
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


def format_money(amount: Decimal | str | None) -> str:
    """``¥1,234.56``: the yuan sign, thousands grouped, whole fen with two places (a negative:
    ``-¥1.00``); a finer internal figure (a quota, the pool) keeps its places, as the API's
    ``cny`` format does, rather than being rounded for display."""
    if amount is None:
        return "-"
    value = Decimal(amount)
    sign = "-" if value < 0 else ""
    return f"{sign}¥{_grouped(abs(value), minimum=2)}"


def _grouped(value: Decimal, *, minimum: int) -> str:
    """``value`` with thousands grouped and no trailing zeros past ``minimum`` places."""
    plain = dec(value)
    places = max(minimum, len(plain.partition(".")[2]))
    return f"{Decimal(plain):,.{places}f}"


def format_points(amount: Decimal | str | None) -> str:
    """EP in the API's one format (``dec``: no trailing zeros, "33.6"), thousands grouped
    (``12,345.678901``)."""
    if amount is None:
        return "-"
    return _grouped(Decimal(amount), minimum=0)


def format_price(price: Decimal | str | None) -> str:
    """The price as the API shows it (4 decimals, a display figure), thousands grouped."""
    if price is None:
        return "-"
    value = Decimal(price)
    places = max(0, -int(value.as_tuple().exponent))
    return f"{value:,.{places}f}"


def format_datetime(ts: float | None, zone: ZoneInfo) -> str:
    """A Unix time as the tenant's local wall clock (its time zone, as its days are)."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M")


def format_date(day: dt.date | None) -> str:
    return "-" if day is None else day.isoformat()
