"""Webhook signatures: what the receiver's helper accepts and refuses, the endpoint checks,
the retry schedule and the wire form of events (no database)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenmall.domain.events import (
    DayClosed,
    MemberExit,
    MembersExited,
    OrderRefunded,
    WithdrawalPaid,
)
from tokenmall.errors import InvalidCommand
from tokenmall.service.webhooks import RetryPolicy, SignatureError, event_id, facts_of
from tokenmall.service.webhooks.endpoints import check_events, check_url
from tokenmall.service.webhooks.signing import sign, signature_header, verify_signature

SECRET = "whsec_" + "ab" * 32
BODY = b'{"id":"evt_1","type":"order.paid","data":{"total":"99.00"}}'
NOW = 1_800_000_000


def test_a_signed_body_verifies_and_returns_its_timestamp() -> None:
    header = signature_header(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify_signature(SECRET, header, BODY, now=NOW + 10) == NOW
    assert verify_signature(SECRET, header, BODY.decode(), now=NOW) == NOW  # str body too


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=200))
def test_any_other_body_is_refused(body: bytes, extra: bytes) -> None:
    header = signature_header(SECRET, body, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, header, body + extra, now=NOW)


def test_another_secret_is_refused() -> None:
    header = signature_header("whsec_other", BODY, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, header, BODY, now=NOW)


def test_a_moved_timestamp_breaks_the_signature() -> None:
    """The timestamp is signed: an attacker cannot refresh an old delivery's t=."""
    old = signature_header(SECRET, BODY, NOW - 3600)
    moved = old.replace(f"t={NOW - 3600}", f"t={NOW}")
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, moved, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_outside_the_tolerance_is_refused(offset: int) -> None:
    header = signature_header(SECRET, BODY, NOW + offset)
    with pytest.raises(SignatureError, match="away"):
        verify_signature(SECRET, header, BODY, now=NOW)
    assert verify_signature(SECRET, header, BODY, tolerance=400, now=NOW) == NOW + offset


@pytest.mark.parametrize(
    "header",
    [None, "", "v1=abc", f"t={NOW}", f"t=soon,v1={'0' * 64}", "garbage", f"t={NOW},v0=abc"],
)
def test_malformed_headers_are_refused(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_signature(SECRET, header, BODY, now=NOW)


def test_one_matching_signature_of_several_is_enough() -> None:
    """A rotation sends v1 under the old and the new secret."""
    header = f"t={NOW},v1={sign('whsec_old', NOW, BODY)},v1={sign(SECRET, NOW, BODY)}"
    assert verify_signature(SECRET, header, BODY, now=NOW) == NOW


def test_urls_must_be_https_except_to_this_machine() -> None:
    assert check_url("https://shop.example.com/hook") == "https://shop.example.com/hook"
    assert check_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"
    assert check_url("http://localhost/hook") == "http://localhost/hook"
    for bad in [
        "http://shop.example.com/hook",
        "ftp://shop.example.com/",
        "https://",
        "https://user:pw@shop.example.com/",
        "https://shop.example.com/#x",
        "https://shop.example.com:port/",
        "hook",
        "https://x.com/" + "a" * 500,
    ]:
        with pytest.raises(InvalidCommand):
            check_url(bad)


def test_event_types_are_checked_and_put_in_order() -> None:
    assert check_events(["day.closed", "order.paid", "order.paid"]) == ("order.paid", "day.closed")
    with pytest.raises(InvalidCommand, match="unknown"):
        check_events(["order.paid", "order.shipped"])
    with pytest.raises(InvalidCommand):
        check_events([])


def test_the_back_off_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(base=30, cap=7200, max_attempts=20)
    assert [policy.delay(n) for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3840,
        7200,
    ]
    assert policy.delay(50) == 7200


def test_event_ids_are_stable_per_fact_and_differ_between_facts() -> None:
    assert event_id(1, "order.paid", "o1") == event_id(1, "order.paid", "o1")
    ids = {
        event_id(1, "order.paid", "o1"),
        event_id(1, "order.settled", "o1"),
        event_id(1, "order.paid", "o2"),
        event_id(2, "order.paid", "o1"),
    }
    assert len(ids) == 4
    assert all(i.startswith("evt_") and len(i) == 36 for i in ids)


def test_amounts_travel_as_decimal_strings_and_each_fact_names_its_stream() -> None:
    refund = facts_of(
        OrderRefunded(
            "o1", "bob", "r1", Decimal("30.00"), Decimal("30.00"), Decimal("100.00"),
            Decimal("0.3"), True, 1.0,
        )
    )[0]  # fmt: skip
    assert (refund.type, refund.key, refund.stream) == ("order.refunded", "o1:r1", "order:o1")
    assert refund.data["amount"] == "30.00"
    assert refund.data["settled"] is True
    (paid,) = facts_of(WithdrawalPaid("wd_1", "bob", Decimal("20.00"), Decimal("0.20"), 1.0))
    assert paid.data == {
        "withdrawal": "wd_1",
        "member": "bob",
        "amount": "20.00",
        "fee": "0.20",
        "net": "19.80",
    }
    (day,) = facts_of(DayClosed("2026-11-26", Decimal("12.34"), 3, 1))
    assert json.loads(json.dumps(day.data)) == {
        "day": "2026-11-26",
        "paid": "12.34",
        "recipients": 3,
        "exits": 1,
    }


def test_each_exit_of_a_command_is_a_fact_of_its_own_named_by_the_ledger_entry() -> None:
    exits = (
        MemberExit("bob", Decimal("12.5"), Decimal("30.1234")),
        MemberExit("carol", Decimal("1"), Decimal("2.5")),
    )
    facts = facts_of(MembersExited(41, exits, 1.0))
    assert [(f.type, f.key, f.stream) for f in facts] == [
        ("member.exited", "41:bob", "member:bob"),
        ("member.exited", "41:carol", "member:carol"),
    ]
    assert facts[0].data == {
        "member": "bob",
        "points": "12.5",
        "payout": "30.1234",
        "ledger_seq": 41,
    }
    # the same member exiting again later is another event, with another id
    assert event_id(1, "member.exited", "41:bob") != event_id(1, "member.exited", "57:bob")
