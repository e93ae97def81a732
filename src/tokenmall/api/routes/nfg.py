"""NFG over HTTP: collections and airdrops (operator), a member's tokens and the exchange
(member), and, without credentials, each token's ERC-721 metadata JSON at a stable URL, its
provenance and any token event's inclusion proof.

Every write is one unit of work under the tenant's lock; the rules' refusals are the
ERC-721-named errors of :mod:`tokenmall.domain.nfg.errors`, mapped in :mod:`tokenmall.api.errors`
(a missing token or listing 404, not owner nor approved 403, a state that forbids it now 409,
a request no state allows 422).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Request

from tokenmall.api.deps import Caller, Context, MemberCaller, OperatorCaller, TenantCaller
from tokenmall.api.errors import ERROR_RESPONSES
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas.nfg import (
    AirdropBody,
    AnchorOut,
    ApproveBody,
    CollectionCreate,
    CollectionOut,
    EventOut,
    ListBody,
    ListingOut,
    MintBody,
    ModesBody,
    OperatorBody,
    ProofOut,
    ReservationOut,
    SaleOut,
    TokenOut,
    TransferBody,
)
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import Mode
from tokenmall.service.codec import cny, dec
from tokenmall.service.nfg import collections, log, market, tokens
from tokenmall.service.nfg import reads as nfg_reads
from tokenmall.service.nfg.trades import Trades
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["nfg"], responses=ERROR_RESPONSES)

Code = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,32}$", description="Collection code.")]
Serial = Annotated[int, Path(ge=1, le=10_000_000, description="Token serial number.")]
ListingId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Listing id.")]
Seq = Annotated[int, Path(ge=1, le=2**62, description="Token event number.")]
Member = Annotated[str, Path(max_length=64, description="The member's code.")]
_NFG = "/tenants/{tenant}/nfg"


async def _trades(request: Request) -> Trades:
    """The app's CNY buys of listings, built by the composition root with its order flow."""
    service: Trades = request.app.state.services.trades
    return service


TradesDep = Annotated[Trades, Depends(_trades)]


def _me(caller: Caller) -> str:
    assert caller.principal.member is not None
    return caller.principal.member


# -- operator ------------------------------------------------------------------------------


@router.post(_NFG + "/collections", status_code=201)
def create_collection(
    caller: OperatorCaller, ctx: Context, body: CollectionCreate
) -> CollectionOut:
    """A new collection; its rules are checked by the domain (a 422 names the broken one)."""
    coll = body.to_domain()
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        info = collections.create_collection(tx, coll, product_id=body.product_id)
    return CollectionOut.of(info)


@router.get(_NFG + "/collections")
def list_collections(caller: TenantCaller, ctx: Context) -> list[CollectionOut]:
    with read_only(ctx.engine).connect() as conn:
        return [CollectionOut.of(i) for i in collections.list_collections(conn, caller.tenant_id)]


@router.get(_NFG + "/collections/{code}")
def get_collection(caller: TenantCaller, ctx: Context, code: Code) -> CollectionOut:
    with read_only(ctx.engine).connect() as conn:
        return CollectionOut.of(collections.get_collection(conn, caller.tenant_id, code))


@router.post(_NFG + "/collections/{code}/modes")
def set_modes(caller: OperatorCaller, ctx: Context, code: Code, body: ModesBody) -> CollectionOut:
    """Change the transfer policy and the exchange mode (e.g. halt trading: 停牌)."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        info = collections.set_modes(
            tx,
            code,
            transfer_policy=None if body.transfer_policy is None else Mode(body.transfer_policy),
            exchange_mode=None if body.exchange_mode is None else Mode(body.exchange_mode),
        )
    return CollectionOut.of(info)


@router.post(_NFG + "/collections/{code}/airdrop", status_code=201)
def airdrop(caller: OperatorCaller, ctx: Context, code: Code, body: AirdropBody) -> list[TokenOut]:
    """Mint the next serials to the members listed, one each, free of charge."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        events = tokens.airdrop(tx, code, list(body.members))
    with read_only(ctx.engine).connect() as conn:
        return [
            TokenOut.of(tokens.get_token(conn, caller.tenant_id, code, e.token.serial))
            for e in events
        ]


@router.post(_NFG + "/real-names/{member}", status_code=204)
def verify_real_name(caller: OperatorCaller, ctx: Context, member: Member) -> None:
    """Record that the member passed real-name verification (实名认证)."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        collections.verify_real_name(tx, member, by=caller.principal.actor)


@router.post(_NFG + "/anchors", status_code=201)
def publish_anchor(caller: OperatorCaller, ctx: Context) -> AnchorOut:
    """Publish the Merkle root of every token event since the last anchor."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        return AnchorOut.of(log.anchor(tx))


@router.get(_NFG + "/anchors")
def list_anchors(caller: TenantCaller, ctx: Context) -> list[AnchorOut]:
    with read_only(ctx.engine).connect() as conn:
        return [AnchorOut.of(a) for a in log.list_anchors(conn, caller.tenant_id)]


# -- member --------------------------------------------------------------------------------


@router.get(_NFG + "/me/tokens")
def my_tokens(caller: MemberCaller, ctx: Context) -> list[TokenOut]:
    """The caller's tokens (ERC-721 enumeration by owner), by collection and serial."""
    with read_only(ctx.engine).connect() as conn:
        return [TokenOut.of(t) for t in tokens.tokens_of(conn, caller.tenant_id, _me(caller))]


@router.post(_NFG + "/collections/{code}/mint", status_code=201)
def mint(
    caller: MemberCaller,
    ctx: Context,
    code: Code,
    body: MintBody,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=64,
            pattern=r"^[!-~]+$",
            description="Optional: your id of this purchase (1-64 printable ASCII). A retry "
            "with the same key answers the token it bought and takes nothing again; without "
            "one, each call buys the next serial.",
        ),
    ] = None,
) -> TokenOut:
    """Buy the next serial at the collection's price with SP, or with EP at the current price."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        if key is None:
            serial = tokens.mint_for(tx, code, _me(caller), Asset(body.asset)).token.serial
        else:
            serial, _ = tokens.purchase(tx, code, _me(caller), Asset(body.asset), key=key)
    with read_only(ctx.engine).connect() as conn:
        return TokenOut.of(tokens.get_token(conn, caller.tenant_id, code, serial))


@router.post(_NFG + "/collections/{code}/operators", status_code=204)
def set_operator(caller: MemberCaller, ctx: Context, code: Code, body: OperatorBody) -> None:
    """ERC-721 setApprovalForAll: let another member move all the caller's tokens of it."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        tokens.set_approval_for_all(
            tx, code, caller=_me(caller), operator=body.operator, approved=body.approved
        )


def _token_out(ctx: Context, tenant_id: int, code: str, serial: int) -> TokenOut:
    with read_only(ctx.engine).connect() as conn:
        return TokenOut.of(tokens.get_token(conn, tenant_id, code, serial))


@router.post(_NFG + "/tokens/{code}/{serial}/transfer")
def transfer(
    caller: MemberCaller, ctx: Context, code: Code, serial: Serial, body: TransferBody
) -> TokenOut:
    """ERC-721 transferFrom as a gift (转赠), under the collection's transfer policy."""
    me = _me(caller)
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        tokens.transfer(tx, code, serial, caller=me, from_=body.from_ or me, to=body.to)
    return _token_out(ctx, caller.tenant_id, code, serial)


@router.post(_NFG + "/tokens/{code}/{serial}/approve")
def approve(
    caller: MemberCaller, ctx: Context, code: Code, serial: Serial, body: ApproveBody
) -> TokenOut:
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        tokens.approve(tx, code, serial, caller=_me(caller), to=body.to)
    return _token_out(ctx, caller.tenant_id, code, serial)


@router.post(_NFG + "/tokens/{code}/{serial}/redeem")
def redeem(caller: MemberCaller, ctx: Context, code: Code, serial: Serial) -> TokenOut:
    """Use one use of a right: the token stays, marked."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        tokens.redeem(tx, code, serial, caller=_me(caller))
    return _token_out(ctx, caller.tenant_id, code, serial)


@router.post(_NFG + "/tokens/{code}/{serial}/burn")
def burn(caller: MemberCaller, ctx: Context, code: Code, serial: Serial) -> TokenOut:
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        tokens.burn(tx, code, serial, caller=_me(caller))
    return _token_out(ctx, caller.tenant_id, code, serial)


@router.post(_NFG + "/listings", status_code=201)
def list_token(caller: MemberCaller, ctx: Context, body: ListBody) -> ListingOut:
    """List a token at a fixed price (set by the platform under automatic appreciation)."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        listing = market.list_token(
            tx, body.code, body.serial, caller=_me(caller), price=body.price
        )
    return ListingOut.of_domain(listing)


@router.get(_NFG + "/listings")
def open_listings(caller: TenantCaller, ctx: Context) -> list[ListingOut]:
    """Open listings, oldest first (at most 100)."""
    with read_only(ctx.engine).connect() as conn:
        return [ListingOut.of(x) for x in market.open_listings(conn, caller.tenant_id)]


@router.post(_NFG + "/listings/{listing_id}/buy")
def buy(caller: MemberCaller, ctx: Context, listing_id: ListingId) -> SaleOut:
    """Buy with SP: payment, fee, royalty and the change of owner commit together."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        return SaleOut.of(market.buy(tx, listing_id, buyer=_me(caller)))


@router.post(_NFG + "/listings/{listing_id}/order", status_code=201)
def order_listing(caller: MemberCaller, trades: TradesDep, listing_id: ListingId) -> ReservationOut:
    """Buy with CNY: an order of the listing's price, the listing reserved for it until it is
    paid, cancelled or expires (409 ``nfg_listing_reserved`` for anyone else meanwhile).  Pay
    the order as any other; the payment sells the token, or is refunded in full if the sale
    can no longer be honoured.  Asking again while the order is unpaid returns it."""
    return ReservationOut.of(trades.reserve(caller.tenant_id, listing_id, buyer=_me(caller)))


@router.post(_NFG + "/listings/{listing_id}/cancel")
def cancel(caller: MemberCaller, ctx: Context, listing_id: ListingId) -> ListingOut:
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        return ListingOut.of_domain(market.cancel(tx, listing_id, caller=_me(caller)))


# -- public: no credentials ----------------------------------------------------------------


@router.get(_NFG + "/tokens/{code}/{serial}/metadata.json")
def token_metadata(ctx: Context, tenant: str, code: Code, serial: Serial) -> dict[str, Any]:
    """The token's ERC-721 metadata JSON (name, description, image, attributes): the
    ``tokenURI`` of the mirror contract points here.  No credentials."""
    tid = ctx.tenant_id(tenant)
    with read_only(ctx.engine).connect() as conn:
        return tokens.metadata(conn, tid, code, serial)


@router.get(_NFG + "/tokens/{code}/{serial}/provenance")
def token_provenance(ctx: Context, tenant: str, code: Code, serial: Serial) -> list[EventOut]:
    """Every mint, transfer, sale, redemption and burn of the token.  No credentials."""
    tid = ctx.tenant_id(tenant)
    with read_only(ctx.engine).connect() as conn:
        return [EventOut.of(e) for e in tokens.provenance(conn, tid, code, serial)]


@router.get(_NFG + "/events/{seq}/proof")
def event_proof(ctx: Context, tenant: str, seq: Seq) -> ProofOut:
    """The inclusion proof of a token event in its published anchor.  No credentials."""
    tid = ctx.tenant_id(tenant)
    with read_only(ctx.engine).connect() as conn:
        return ProofOut(**log.proof(conn, tid, seq))


# -- previews: what a buy would take now (the member pages show the same figures) ----------


@router.get(_NFG + "/listings/{listing_id}/preview")
def sale_preview(caller: MemberCaller, ctx: Context, listing_id: ListingId) -> SaleOut:
    """What buying the open listing with SP would move now: the caller pays ``price``, the
    seller receives ``proceeds``, fee and royalty go where the collection says."""
    with read_only(ctx.engine).connect() as conn:
        x = market.get_listing(conn, caller.tenant_id, listing_id)
        st = nfg_reads.sale_preview(conn, caller.tenant_id, listing_id, _me(caller))
    return SaleOut(
        listing=x.id,
        code=x.code,
        serial=x.serial,
        price=st.price,
        fee=st.fee,
        pool_share=st.pool_share,
        royalty=st.royalty,
        proceeds=st.proceeds,
        asset=st.asset.value,
    )


@router.get(_NFG + "/collections/{code}/cost")
def mint_cost(
    caller: TenantCaller, ctx: Context, code: Code, asset: Literal["SP", "EP"]
) -> dict[str, str]:
    """What the collection's next serial costs now in SP (its price) or EP (the fewest points
    whose sale pays the price at the current EP price, as the mint takes them)."""
    with read_only(ctx.engine).connect() as conn:
        amount = nfg_reads.mint_preview(conn, caller.tenant_id, code, Asset(asset))
    return {"asset": asset, "amount": cny(amount) if asset == "SP" else dec(amount)}
