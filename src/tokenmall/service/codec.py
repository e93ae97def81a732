"""Commands to and from their wire form (JSON-able dicts of strings).

The same form is the scenario file's event, the API's body, the stored payload of a ledger
transaction and the input of its content hash, so a replay is recognised whatever the source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from tokenmall.domain.economy import (
    BuyPoints,
    CloseDay,
    Command,
    Exchange,
    Join,
    Pay,
    PayoutResult,
    Purchase,
    Redeem,
    Refund,
    RewardGrant,
    RewardTakeBack,
    Sell,
    Settle,
    TokenSale,
    Withdraw,
)
from tokenmall.errors import InvalidCommand
from tokenmall.money import parse_amount

__all__ = [
    "KINDS",
    "LEDGER_KINDS",
    "canonical",
    "command_from_payload",
    "content_hash",
    "dec",
    "to_payload",
]

KINDS = (
    "purchase",
    "sell",
    "redeem",
    "exchange",
    "buy_points",
    "close_day",
    "refund",
    "join",
    "pay",
    "settle",
    "withdraw",
    "payout_result",
)
# Commands the engine applies on its own behalf (model rewards and their take-backs): parsed
# from a stored payload, never accepted as a scenario event or an API body.
LEDGER_KINDS = ("reward_grant", "reward_take_back", "token_sale")
_SALE_PARTS = ("proceeds", "fee", "pool_share", "royalty")


_FEN = Decimal("0.01")


def cny(d: Decimal) -> str:
    """A CNY or SP amount on the wire, the one format of every such field: whole fen as
    "12.30" (two places, always); the platform's finer internal figures (a quota, the pool)
    keep their 4 places rather than being rounded for display."""
    q = d.quantize(_FEN)
    return str(q) if q == d else dec(d)


def dec(d: Decimal) -> str:
    """A Decimal as a plain string without exponent or trailing zeros ("14.7", "30")."""
    s = str(d)
    if "E" in s:
        s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no spaces, UTF-8."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def content_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()


def _code(ev: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    v = ev.get(name)
    if v is None:
        if required:
            raise InvalidCommand(f"missing field {name!r}")
        return None
    if not isinstance(v, str | int) or isinstance(v, bool) or str(v).strip() == "":
        raise InvalidCommand(f"{name} must be a non-empty string")
    s = str(v).strip()
    if len(s) > 64:
        raise InvalidCommand(f"{name} is longer than 64 characters")
    return s


def _amount(ev: Mapping[str, Any], name: str, *, required: bool = True) -> Decimal | None:
    if name not in ev or ev[name] is None:
        if required:
            raise InvalidCommand(f"missing field {name!r}")
        return None
    try:
        return parse_amount(ev[name], what=name, allow_zero=False)
    except ValueError as exc:
        raise InvalidCommand(str(exc)) from None


def _amount0(ev: Mapping[str, Any], name: str) -> Decimal:
    """An optional amount that may be zero (the parts of a mixed payment)."""
    if name not in ev or ev[name] is None:
        return Decimal(0)
    try:
        return parse_amount(ev[name], what=name)
    except ValueError as exc:
        raise InvalidCommand(str(exc)) from None


def command_from_payload(
    ev: Mapping[str, Any], *, default_order: str | None = None, internal: bool = False
) -> Command:
    """Parse and validate one event; raises :class:`InvalidCommand` with the reason.

    ``internal``: also the engine's own kinds (:data:`LEDGER_KINDS`), e.g. to replay a log.
    """
    if not isinstance(ev, Mapping):
        raise InvalidCommand("an event must be an object")
    kind = ev.get("type")
    if internal and kind == "token_sale":
        return _token_sale(ev)
    if internal and kind in LEDGER_KINDS:
        extra = sorted(set(ev) - {"type", "member", "amount", "model"})
        if extra:
            raise InvalidCommand(f"unexpected field(s) for {kind}: {', '.join(extra)}")
        amount = _amount(ev, "amount")
        assert amount is not None
        reward = RewardGrant if kind == "reward_grant" else RewardTakeBack
        return reward(
            member=_code(ev, "member") or "", amount=amount, model=_code(ev, "model") or ""
        )
    if kind not in KINDS:
        raise InvalidCommand(f"unknown event type {kind!r} (expected one of {', '.join(KINDS)})")
    allowed = _FIELDS[kind]
    extra = sorted(set(ev) - allowed - {"type", "id"})
    if extra:
        raise InvalidCommand(f"unexpected field(s) for {kind}: {', '.join(extra)}")
    if kind == "purchase":
        order = _code(ev, "order", required=default_order is None) or default_order
        assert order is not None
        amount = _amount(ev, "amount")
        assert amount is not None
        return Purchase(
            order=order,
            member=_code(ev, "member") or "",
            amount=amount,
            referrer=_code(ev, "referrer", required=False),
            pool_amount=_amount(ev, "pool_amount", required=False),
            fund_amount=_amount(ev, "fund_amount", required=False),
        )
    if kind in ("sell", "exchange"):
        pts = _amount(ev, "points")
        assert pts is not None
        cls = Sell if kind == "sell" else Exchange
        return cls(member=_code(ev, "member") or "", points=pts)
    if kind == "redeem":
        pts = _amount(ev, "points")
        assert pts is not None
        return Redeem(member=_code(ev, "member") or "", points=pts, order=_code(ev, "order") or "")
    if kind == "buy_points":
        s = _amount(ev, "stable")
        assert s is not None
        return BuyPoints(member=_code(ev, "member") or "", stable=s)
    if kind == "close_day":
        return CloseDay(day=_code(ev, "day", required=False) or "")
    if kind == "join":
        return Join(
            member=_code(ev, "member") or "", referrer=_code(ev, "referrer", required=False)
        )
    if kind == "pay":
        return Pay(
            order=_code(ev, "order") or "",
            member=_code(ev, "member") or "",
            cny=_amount0(ev, "cny"),
            sp=_amount0(ev, "sp"),
            points=_amount0(ev, "points"),
        )
    if kind == "settle":
        return Settle(
            order=_code(ev, "order") or "",
            pool_amount=_amount(ev, "pool_amount", required=False),
            fund_amount=_amount(ev, "fund_amount", required=False),
        )
    if kind == "withdraw":
        amount = _amount(ev, "amount")
        assert amount is not None
        return Withdraw(
            request=_code(ev, "request") or "",
            member=_code(ev, "member") or "",
            amount=amount,
            fee=_amount0(ev, "fee"),
        )
    if kind == "payout_result":
        paid = ev.get("paid")
        if not isinstance(paid, bool):
            raise InvalidCommand("paid must be true or false")
        return PayoutResult(request=_code(ev, "request") or "", paid=paid)
    return Refund(order=_code(ev, "order") or "", amount=_amount(ev, "amount", required=False))


def _token_sale(ev: Mapping[str, Any]) -> TokenSale:
    known = {"type", "ref", "buyer", "price", "seller", "issuer", "order", *_SALE_PARTS}
    extra = sorted(set(ev) - known)
    if extra:
        raise InvalidCommand(f"unexpected field(s) for token_sale: {', '.join(extra)}")
    price = _amount(ev, "price")
    assert price is not None
    return TokenSale(
        ref=_code(ev, "ref") or "",
        buyer=_code(ev, "buyer") or "",
        price=price,
        seller=_code(ev, "seller", required=False),
        issuer=_code(ev, "issuer", required=False),
        order=_code(ev, "order", required=False),
        **{name: _amount0(ev, name) for name in _SALE_PARTS},
    )


_FIELDS: dict[str, set[str]] = {
    "purchase": {"order", "member", "amount", "referrer", "pool_amount", "fund_amount"},
    "sell": {"member", "points"},
    "exchange": {"member", "points"},
    "redeem": {"member", "points", "order"},
    "buy_points": {"member", "stable"},
    "close_day": {"day"},
    "refund": {"order", "amount"},
    "join": {"member", "referrer"},
    "pay": {"order", "member", "cny", "sp", "points"},
    "settle": {"order", "pool_amount", "fund_amount"},
    "withdraw": {"request", "member", "amount", "fee"},
    "payout_result": {"request", "paid"},
}


def to_payload(cmd: Command) -> dict[str, Any]:
    """The canonical wire form of a command (decimal strings, no empty fields)."""
    if isinstance(cmd, Join):
        j = {"type": "join", "member": cmd.member}
        if cmd.referrer is not None:
            j["referrer"] = cmd.referrer
        return j
    if isinstance(cmd, Pay):
        return {
            "type": "pay",
            "order": cmd.order,
            "member": cmd.member,
            "cny": dec(cmd.cny),
            "sp": dec(cmd.sp),
            "points": dec(cmd.points),
        }
    if isinstance(cmd, Settle):
        st = {"type": "settle", "order": cmd.order}
        if cmd.pool_amount is not None:
            st["pool_amount"] = dec(cmd.pool_amount)
        if cmd.fund_amount is not None:
            st["fund_amount"] = dec(cmd.fund_amount)
        return st
    if isinstance(cmd, Withdraw):
        return {
            "type": "withdraw",
            "request": cmd.request,
            "member": cmd.member,
            "amount": dec(cmd.amount),
            "fee": dec(cmd.fee),
        }
    if isinstance(cmd, PayoutResult):
        return {"type": "payout_result", "request": cmd.request, "paid": cmd.paid}
    if isinstance(cmd, Purchase):
        out = {
            "type": "purchase",
            "order": cmd.order,
            "member": cmd.member,
            "amount": dec(cmd.amount),
        }
        if cmd.referrer is not None:
            out["referrer"] = cmd.referrer
        if cmd.pool_amount is not None:
            out["pool_amount"] = dec(cmd.pool_amount)
        if cmd.fund_amount is not None:
            out["fund_amount"] = dec(cmd.fund_amount)
        return out
    if isinstance(cmd, Sell):
        return {"type": "sell", "member": cmd.member, "points": dec(cmd.points)}
    if isinstance(cmd, Exchange):
        return {"type": "exchange", "member": cmd.member, "points": dec(cmd.points)}
    if isinstance(cmd, Redeem):
        return {
            "type": "redeem",
            "member": cmd.member,
            "points": dec(cmd.points),
            "order": cmd.order,
        }
    if isinstance(cmd, BuyPoints):
        return {"type": "buy_points", "member": cmd.member, "stable": dec(cmd.stable)}
    if isinstance(cmd, CloseDay):
        return {"type": "close_day", "day": cmd.day}
    if isinstance(cmd, RewardGrant | RewardTakeBack):
        kind = "reward_grant" if isinstance(cmd, RewardGrant) else "reward_take_back"
        return {"type": kind, "member": cmd.member, "amount": dec(cmd.amount), "model": cmd.model}
    if isinstance(cmd, TokenSale):
        sale: dict[str, Any] = {
            "type": "token_sale",
            "ref": cmd.ref,
            "buyer": cmd.buyer,
            "price": dec(cmd.price),
        }
        sale.update({name: dec(getattr(cmd, name)) for name in _SALE_PARTS})
        for name in ("seller", "issuer", "order"):
            if getattr(cmd, name) is not None:
                sale[name] = getattr(cmd, name)
        return sale
    out = {"type": "refund", "order": cmd.order}
    if cmd.amount is not None:
        out["amount"] = dec(cmd.amount)
    return out
