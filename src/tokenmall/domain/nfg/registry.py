"""The token registry: ERC-721 semantics over in-memory state, plus the collections' rules.

ERC-721 in Python names: ``owner_of``, ``balance_of``, ``approve``, ``get_approved``,
``set_approval_for_all``, ``is_approved_for_all``, ``transfer_from``, mint and burn.  As in
the standard, approvals and operators are per collection (one collection = one contract),
``transfer_from`` needs a caller who is the owner, the approved address or an operator, the
given ``from_`` must be the owner, and a transfer clears the token's approval.  Members are
plain strings; an empty string or None is "nobody" (ERC-721's zero address).

On top, every change of owner passes the collection's policy (``check_transfer``).  Every
check runs before the first change, so a refused command leaves the registry as it was.
Time is passed in (a POSIX timestamp); the registry reads no clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg.collection import Collection, Kind, Mode
from tokenmall.domain.nfg.errors import (
    AssetNotAccepted,
    DailyLimit,
    ERC721IncorrectOwner,
    ERC721InsufficientApproval,
    ERC721InvalidApprover,
    ERC721InvalidOperator,
    ERC721InvalidOwner,
    ERC721InvalidReceiver,
    ERC721NonexistentToken,
    HoldingPeriod,
    NotRedeemable,
    RealNameRequired,
    RightExpired,
    RightUsedUp,
    SelfTransfer,
    SupplyExhausted,
    TransferForbidden,
)
from tokenmall.domain.nfg.events import EventKind, ProvenanceEvent, TokenRef
from tokenmall.errors import InvalidParameter, NotFound

__all__ = ["CHINA_UTC_OFFSET", "Registry", "Token"]

CHINA_UTC_OFFSET = 8 * 3600  # the day of a daily transfer limit starts at 00:00 Beijing time
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Token:
    """A token's state; replaced (never mutated) on every change."""

    ref: TokenRef
    owner: str
    acquired_at: float  # when the current owner got it: the start of the holding period
    minted_at: float
    uses_left: int  # rights; 0 for items
    last_price: Decimal  # last trade price (the mint price until the first sale)
    item_no: str | None = None
    approved: str | None = None


class Registry:
    """Every collection and token of one tenant, with the provenance of each change."""

    def __init__(self, *, utc_offset_seconds: int = CHINA_UTC_OFFSET) -> None:
        self._utc_offset = utc_offset_seconds
        self._collections: dict[str, Collection] = {}
        self._tokens: dict[TokenRef, Token] = {}
        self._minted: dict[str, int] = {}
        self._burned: dict[str, int] = {}
        self._owned: dict[tuple[str, str], set[int]] = {}
        self._operators: dict[tuple[str, str], set[str]] = {}
        self._sent: dict[tuple[str, str, int], int] = {}
        self._verified: set[str] = set()
        self._events: list[ProvenanceEvent] = []
        self._seq0 = 0  # events before this registry's first (a restored registry)

    # -- collections and members -----------------------------------------------------------

    def add_collection(self, collection: Collection) -> None:
        if collection.code in self._collections:
            raise InvalidParameter(f"collection {collection.code} already exists")
        self._collections[collection.code] = collection
        self._minted[collection.code] = 0
        self._burned[collection.code] = 0

    def update_collection(self, collection: Collection) -> None:
        """New rules for an existing collection (e.g. the exchange halted or reopened)."""
        old = self.collection(collection.code)
        if (old.kind, old.uses) != (collection.kind, collection.uses):
            raise InvalidParameter("a collection's kind and uses per token never change")
        if collection.max_supply < self._minted[old.code]:
            raise InvalidParameter(f"{self._minted[old.code]} tokens are already minted")
        self._collections[collection.code] = collection

    def collection(self, code: str) -> Collection:
        try:
            return self._collections[code]
        except KeyError:
            raise NotFound(f"no NFG collection {code!r}") from None

    def verify_real_name(self, member: str) -> None:
        """Record that the member passed real-name verification (实名认证)."""
        self._verified.add(member)

    def has_real_name(self, member: str) -> bool:
        return member in self._verified

    # -- restoring stored state ----------------------------------------------------------
    # A service keeps tokens in a database and rebuilds, per command, only the part of the
    # registry the command reads: the collection with its counts, the tokens it touches,
    # their owners' operators and verified names, the sender's transfers today.

    def restore_collection(self, collection: Collection, *, minted: int, burned: int) -> None:
        self.add_collection(collection)
        self._minted[collection.code] = minted
        self._burned[collection.code] = burned

    def restore_token(self, token: Token) -> None:
        self.collection(token.ref.code)
        self._tokens[token.ref] = token
        self._owned.setdefault((token.ref.code, token.owner), set()).add(token.ref.serial)

    def restore_operator(self, code: str, owner: str, operator: str) -> None:
        self._operators.setdefault((code, owner), set()).add(operator)

    def restore_sent(self, code: str, member: str, at: float, count: int) -> None:
        """``count`` tokens of ``code`` sent by ``member`` on the day of ``at``."""
        self._sent[(code, member, self._day(at))] = count

    def restore_seq(self, last_seq: int) -> None:
        """Number the next event ``last_seq + 1`` (the stored history's continuation)."""
        self._seq0 = last_seq - len(self._events)

    def day_start(self, at: float) -> float:
        """The start of the daily limit's day that contains ``at``, as a timestamp."""
        return float(self._day(at) * _DAY - self._utc_offset)

    # -- ERC-721 views -------------------------------------------------------------------

    def token(self, ref: TokenRef) -> Token:
        try:
            return self._tokens[ref]
        except KeyError:
            raise ERC721NonexistentToken(
                f"token {ref} does not exist (never minted, or burned)"
            ) from None

    def exists(self, ref: TokenRef) -> bool:
        return ref in self._tokens

    def owner_of(self, ref: TokenRef) -> str:
        return self.token(ref).owner

    def balance_of(self, code: str, owner: str) -> int:
        if not owner:
            raise ERC721InvalidOwner("balance of nobody: give an owner")
        self.collection(code)
        return len(self._owned.get((code, owner), ()))

    def get_approved(self, ref: TokenRef) -> str | None:
        return self.token(ref).approved

    def is_approved_for_all(self, code: str, owner: str, operator: str) -> bool:
        return operator in self._operators.get((code, owner), ())

    def tokens_of(self, owner: str, code: str | None = None) -> list[TokenRef]:
        """The owner's tokens, by collection then serial (ERC-721 enumeration by owner)."""
        codes = sorted(self._collections) if code is None else [code]
        return [TokenRef(c, s) for c in codes for s in sorted(self._owned.get((c, owner), ()))]

    def minted(self, code: str) -> int:
        """Serials issued so far, burned ones included: never above max_supply."""
        self.collection(code)
        return self._minted[code]

    def total_supply(self, code: str) -> int:
        """Tokens of the collection that exist now (minted minus burned)."""
        self.collection(code)
        return self._minted[code] - self._burned[code]

    def all_tokens(self) -> Iterator[Token]:
        return iter(self._tokens.values())

    @property
    def events(self) -> tuple[ProvenanceEvent, ...]:
        """The append-only provenance of every token, in order."""
        return tuple(self._events)

    def provenance(self, ref: TokenRef) -> list[ProvenanceEvent]:
        return [e for e in self._events if e.token == ref]

    def is_authorized(self, caller: str | None, ref: TokenRef) -> bool:
        """Owner, the token's approved address, or an operator of the owner."""
        tok = self.token(ref)
        return bool(caller) and (
            caller in (tok.owner, tok.approved)
            or self.is_approved_for_all(ref.code, tok.owner, caller or "")
        )

    def metadata(self, ref: TokenRef) -> dict[str, Any]:
        """ERC-721 metadata JSON (name, description, image, attributes)."""
        tok = self.token(ref)
        c = self.collection(ref.code)
        t = c.metadata

        def fill(text: str) -> str:
            return t.fill(text, c.code, ref.serial, tok.item_no)

        attrs: list[dict[str, Any]] = [
            {"trait_type": fill(k), "value": fill(v)} for k, v in t.attributes
        ]
        attrs.append({"trait_type": "Serial", "value": ref.serial, "max_value": c.max_supply})
        if c.kind is Kind.ITEM and tok.item_no is not None:
            attrs.append({"trait_type": "Item number", "value": tok.item_no})
        if c.kind is Kind.RIGHT:
            attrs.append({"trait_type": "Uses left", "value": tok.uses_left, "max_value": c.uses})
            if c.expires_at is not None:
                attrs.append(
                    {"trait_type": "Expires", "display_type": "date", "value": int(c.expires_at)}
                )
        return {
            "name": fill(t.name),
            "description": fill(t.description),
            "image": fill(t.image),
            "attributes": attrs,
        }

    # -- ERC-721 actions -----------------------------------------------------------------

    def approve(self, caller: str, to: str | None, ref: TokenRef) -> None:
        """Approve ``to`` for one token (None clears); by the owner or one of its operators."""
        tok = self.token(ref)
        if caller != tok.owner and not self.is_approved_for_all(ref.code, tok.owner, caller):
            raise ERC721InvalidApprover(
                f"{caller!r} may not approve for {ref}: only its owner or an operator may"
            )
        self._tokens[ref] = replace(tok, approved=to or None)

    def set_approval_for_all(self, caller: str, code: str, operator: str, approved: bool) -> None:
        if not operator:
            raise ERC721InvalidOperator("an operator must be someone")
        self.collection(code)
        ops = self._operators.setdefault((code, caller), set())
        if approved:
            ops.add(operator)
        else:
            ops.discard(operator)

    def transfer_from(
        self, caller: str, from_: str, to: str, ref: TokenRef, *, at: float
    ) -> ProvenanceEvent:
        """A gift: move the token from its owner to ``to`` under the collection's policy."""
        self._check_erc721(caller, from_, to, ref)
        self.check_transfer(ref, from_, to, at=at, sale=False)
        return self._move(ref, to, at, EventKind.TRANSFER)

    def mint(
        self,
        code: str,
        to: str,
        *,
        at: float,
        item_no: str | None = None,
        price: Decimal | None = None,
        asset: Asset | None = None,
    ) -> ProvenanceEvent:
        """Mint the next serial to ``to`` (a purchase with ``price``/``asset``, or an airdrop)."""
        c = self.collection(code)
        if not to:
            raise ERC721InvalidReceiver("mint to nobody: give a receiver")
        if self._minted[code] >= c.max_supply:
            raise SupplyExhausted(f"all {c.max_supply} tokens of {code} are minted")
        if c.real_name_only and to not in self._verified:
            raise RealNameRequired(f"{to!r} must verify their real name to hold {code}")
        if asset is not None and asset not in c.accepted:
            raise AssetNotAccepted(f"{code} is not sold for {asset}")
        serial = self._minted[code] + 1
        ref = TokenRef(code, serial)
        self._minted[code] = serial
        tok = Token(ref, to, at, at, c.uses, c.price if price is None else price, item_no)
        self._tokens[ref] = tok
        self._owned.setdefault((code, to), set()).add(serial)
        return self._record(EventKind.MINT, tok, from_=None, to=to, at=at, price=price, asset=asset)

    def burn(self, caller: str, ref: TokenRef, *, at: float) -> ProvenanceEvent:
        tok = self.token(ref)
        if not self.is_authorized(caller, ref):
            raise ERC721InsufficientApproval(f"{caller!r} may not burn {ref}")
        del self._tokens[ref]
        self._burned[ref.code] += 1
        self._owned[(ref.code, tok.owner)].discard(ref.serial)
        return self._record(EventKind.BURN, tok, from_=tok.owner, to=None, at=at)

    def redeem(self, caller: str, ref: TokenRef, *, at: float) -> ProvenanceEvent:
        """Use one use of a right; the token stays with its owner, marked."""
        tok = self.token(ref)
        c = self.collection(ref.code)
        if not self.is_authorized(caller, ref):
            raise ERC721InsufficientApproval(f"{caller!r} may not redeem {ref}")
        if c.kind is not Kind.RIGHT:
            raise NotRedeemable(f"{ref} is a physical item, not a right with uses")
        if c.expires_at is not None and at > c.expires_at:
            raise RightExpired(f"{ref} expired at {c.expires_at}")
        if tok.uses_left <= 0:
            raise RightUsedUp(f"{ref} has no use left")
        tok = replace(tok, uses_left=tok.uses_left - 1)
        self._tokens[ref] = tok
        return self._record(EventKind.REDEEM, tok, from_=tok.owner, to=tok.owner, at=at)

    # -- the collection's policy ---------------------------------------------------------

    def check_transfer(
        self, ref: TokenRef, from_: str, to: str | None, *, at: float, sale: bool
    ) -> None:
        """Raise the first policy rule a transfer would break; ``to`` None: any receiver."""
        tok = self.token(ref)
        c = self.collection(ref.code)
        needed = Mode.OPEN if sale else Mode.GIFT_ONLY
        if c.transfer_policy.rank < needed.rank:
            what = "sold" if sale else "transferred"
            raise TransferForbidden(
                f"{ref.code} tokens may not be {what} (transfer policy {c.transfer_policy})"
            )
        if to is not None and to == from_:
            raise SelfTransfer(f"{ref} cannot be transferred to its owner {from_!r}")
        if c.real_name_only:
            for member in (from_, to):
                if member is not None and member not in self._verified:
                    raise RealNameRequired(f"{member!r} must verify their real name first")
        ready = tok.acquired_at + c.min_holding_seconds
        if at < ready:
            raise HoldingPeriod(
                f"{ref} must be held {c.min_holding_seconds:g} s before it changes hands: "
                f"{ready - at:g} s left"
            )
        if c.kind is Kind.RIGHT and c.no_transfer_when_used:
            if tok.uses_left <= 0:
                raise RightUsedUp(f"{ref} is used up and may no longer change hands")
            if c.expires_at is not None and at > c.expires_at:
                raise RightExpired(f"{ref} expired and may no longer change hands")
        limit = c.daily_transfer_limit
        if limit is not None and self._sent.get((ref.code, from_, self._day(at)), 0) >= limit:
            raise DailyLimit(f"{from_!r} already transferred {limit} {ref.code} tokens today")

    def apply_sale(
        self, ref: TokenRef, seller: str, buyer: str, *, at: float, price: Decimal, asset: Asset
    ) -> ProvenanceEvent:
        """The exchange's change of owner (it checked listing and policy first)."""
        self._check_erc721(seller, seller, buyer, ref)
        self.check_transfer(ref, seller, buyer, at=at, sale=True)
        return self._move(ref, buyer, at, EventKind.SALE, price=price, asset=asset)

    # -- internals -----------------------------------------------------------------------

    def _check_erc721(self, caller: str, from_: str, to: str, ref: TokenRef) -> None:
        if not to:
            raise ERC721InvalidReceiver(f"transfer of {ref} to nobody: give a receiver")
        tok = self.token(ref)
        if not self.is_authorized(caller, ref):
            raise ERC721InsufficientApproval(
                f"{caller!r} is not the owner of {ref}, nor approved, nor an operator"
            )
        if from_ != tok.owner:
            raise ERC721IncorrectOwner(f"{ref} belongs to {tok.owner!r}, not {from_!r}")

    def _day(self, at: float) -> int:
        return int((at + self._utc_offset) // _DAY)

    def _move(
        self,
        ref: TokenRef,
        to: str,
        at: float,
        kind: EventKind,
        *,
        price: Decimal | None = None,
        asset: Asset | None = None,
    ) -> ProvenanceEvent:
        tok = self._tokens[ref]
        frm = tok.owner
        day_key = (ref.code, frm, self._day(at))
        self._sent[day_key] = self._sent.get(day_key, 0) + 1
        self._owned[(ref.code, frm)].discard(ref.serial)
        self._owned.setdefault((ref.code, to), set()).add(ref.serial)
        tok = replace(
            tok,
            owner=to,
            approved=None,
            acquired_at=at,
            last_price=tok.last_price if price is None else price,
        )
        self._tokens[ref] = tok
        return self._record(kind, tok, from_=frm, to=to, at=at, price=price, asset=asset)

    def _record(
        self,
        kind: EventKind,
        tok: Token,
        *,
        from_: str | None,
        to: str | None,
        at: float,
        price: Decimal | None = None,
        asset: Asset | None = None,
    ) -> ProvenanceEvent:
        ref = tok.ref
        uses = tok.uses_left if self._collections[ref.code].kind is Kind.RIGHT else None
        event = ProvenanceEvent(
            self._seq0 + len(self._events) + 1, kind, ref, from_, to, at, price, asset, uses
        )
        self._events.append(event)
        return event
