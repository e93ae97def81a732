"""The mall's catalog: merchants, products, SKUs and their stock.

Prices and per-product pool/fund amounts are CNY in whole fen (a person pays them), passed in
and out as Decimal and stored as integer fen.  Stock is changed only by conditional updates
(``... WHERE stock >= :n``): there is no read-then-write anywhere, so no interleaving of
concurrent orders can sell a unit twice, on SQLite or PostgreSQL, in one process or many.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from tokenmall.errors import InvalidCommand, NotFound
from tokenmall.money import FEN_PLACES, fen_of, from_atoms
from tokenmall.service.errors import AlreadyExists, OutOfStock
from tokenmall.service.pages import Page, fetch_page
from tokenmall.store import schema as s
from tokenmall.store.numbers import next_numbers

__all__ = [
    "MAX_PRICE",
    "MAX_SKUS_PER_PRODUCT",
    "MAX_STOCK",
    "Merchant",
    "Product",
    "Sku",
    "adjust_stock",
    "create_merchant",
    "create_product",
    "create_sku",
    "get_merchant",
    "get_product",
    "get_sku",
    "list_merchants",
    "list_products",
    "list_skus",
    "release_stock",
    "reserve_stock",
    "update_merchant",
    "update_product",
    "update_sku",
]

MAX_PRICE = Decimal("100000000")  # CNY per unit; keeps order totals far below the engine's cap
MAX_STOCK = 1_000_000_000
MAX_SKUS_PER_PRODUCT = 100  # a product is read with all its SKUs in one answer
UNSET: Any = object()  # "not given" for updates, where None means "clear"


@dataclass(frozen=True, slots=True)
class Merchant:
    id: int
    code: str
    name: str
    accepts_sp: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class Sku:
    id: int
    product_id: int
    name: str
    price: Decimal
    stock: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    merchant_id: int
    name: str
    description: str
    pool_amount: Decimal | None
    fund_amount: Decimal | None
    created_at: float
    updated_at: float
    on_shelf: bool = True
    skus: list[Sku] = field(default_factory=list)


def _fen(amount: Decimal, what: str, *, positive: bool = False) -> int:
    if not amount.is_finite() or amount < 0 or (positive and amount == 0):
        raise InvalidCommand(f"{what} must be {'greater than' if positive else 'at least'} 0")
    if amount >= MAX_PRICE:
        raise InvalidCommand(f"{what} must be less than {MAX_PRICE} CNY")
    try:
        return fen_of(amount)
    except ValueError:
        raise InvalidCommand(f"{what} must be whole fen (at most 2 decimal places)") from None


def _opt_fen(amount: Decimal | None, what: str) -> int | None:
    return None if amount is None else _fen(amount, what)


def _cny(fen: int | None) -> Decimal | None:
    return None if fen is None else from_atoms(fen, FEN_PLACES)


def _check_stock(n: int, what: str = "stock") -> int:
    if isinstance(n, bool) or not 0 <= n <= MAX_STOCK:
        raise InvalidCommand(f"{what} must be an integer from 0 to {MAX_STOCK}")
    return n


# ----------------------------------------------------------------------------- merchants


_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def _merchant(row: Any) -> Merchant:
    return Merchant(row.id, row.code, row.name, bool(row.accepts_sp), row.created_at)


def create_merchant(
    conn: Connection, tenant_id: int, *, code: str, name: str, accepts_sp: bool = False
) -> Merchant:
    if not _CODE.fullmatch(code):
        raise InvalidCommand(
            f"merchant code {code!r} must be 1-64 letters, digits or _.:- (starting with a "
            "letter or digit)"
        )
    m = s.merchants.c
    if conn.execute(select(m.id).where(m.tenant_id == tenant_id, m.code == code)).first():
        raise AlreadyExists(f"merchant {code!r} already exists")
    now = time.time()
    no = next_numbers(conn, tenant_id, "merchant")
    conn.execute(
        insert(s.merchants).values(
            tenant_id=tenant_id, id=no, code=code, name=name, accepts_sp=accepts_sp, created_at=now
        )
    )
    return Merchant(no, code, name, accepts_sp, now)


def get_merchant(conn: Connection, tenant_id: int, merchant_id: int) -> Merchant:
    m = s.merchants.c
    row = conn.execute(
        select(s.merchants).where(m.tenant_id == tenant_id, m.id == merchant_id)
    ).first()
    if row is None:
        raise NotFound(f"no merchant {merchant_id}")
    return _merchant(row)


def list_merchants(
    conn: Connection, tenant_id: int, *, limit: int, cursor: str | None
) -> Page[Merchant]:
    m = s.merchants.c
    q = select(s.merchants).where(m.tenant_id == tenant_id)
    return fetch_page(conn, q, m.id, limit=limit, cursor=cursor, convert=_merchant)


def update_merchant(
    conn: Connection,
    tenant_id: int,
    merchant_id: int,
    *,
    name: str | None = None,
    accepts_sp: bool | None = None,
) -> Merchant:
    m = s.merchants.c
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if accepts_sp is not None:
        values["accepts_sp"] = accepts_sp
    if values:
        conn.execute(
            update(s.merchants).where(m.tenant_id == tenant_id, m.id == merchant_id).values(values)
        )
    return get_merchant(conn, tenant_id, merchant_id)


# ----------------------------------------------------------------------------- products


def _product(row: Any) -> Product:
    return Product(
        id=row.id,
        merchant_id=row.merchant_id,
        name=row.name,
        description=row.description,
        pool_amount=_cny(row.pool_amount_fen),
        fund_amount=_cny(row.fund_amount_fen),
        created_at=row.created_at,
        updated_at=row.updated_at,
        on_shelf=bool(row.on_shelf),
    )


def create_product(
    conn: Connection,
    tenant_id: int,
    *,
    merchant_id: int,
    name: str,
    description: str = "",
    pool_amount: Decimal | None = None,
    fund_amount: Decimal | None = None,
) -> Product:
    m = s.merchants.c
    if not conn.execute(select(m.id).where(m.tenant_id == tenant_id, m.id == merchant_id)).first():
        raise InvalidCommand(f"no merchant {merchant_id} in this tenant")
    now = time.time()
    no = next_numbers(conn, tenant_id, "product")
    conn.execute(
        insert(s.products).values(
            tenant_id=tenant_id,
            id=no,
            merchant_id=merchant_id,
            name=name,
            description=description,
            pool_amount_fen=_opt_fen(pool_amount, "pool_amount"),
            fund_amount_fen=_opt_fen(fund_amount, "fund_amount"),
            created_at=now,
            updated_at=now,
        )
    )
    return get_product(conn, tenant_id, no)


def get_product(conn: Connection, tenant_id: int, product_id: int) -> Product:
    """A product with all its SKUs (at most MAX_SKUS_PER_PRODUCT)."""
    p = s.products.c
    row = conn.execute(
        select(s.products).where(p.tenant_id == tenant_id, p.id == product_id)
    ).first()
    if row is None:
        raise NotFound(f"no product {product_id}")
    product = _product(row)
    k = s.skus.c
    product.skus.extend(
        _sku(r)
        for r in conn.execute(
            select(s.skus)
            .where(k.tenant_id == tenant_id, k.product_id == product_id)
            .order_by(k.id)
        )
    )
    return product


def list_products(
    conn: Connection,
    tenant_id: int,
    *,
    limit: int,
    cursor: str | None,
    merchant_id: int | None = None,
    on_shelf: bool | None = None,
) -> Page[Product]:
    """Products with their SKUs, prices and stock; ``on_shelf`` filters (None: all).

    The SKUs of a page come from one query over the page's products (at most
    MAX_SKUS_PER_PRODUCT each), not one per product.
    """
    p = s.products.c
    q = select(s.products).where(p.tenant_id == tenant_id)
    if merchant_id is not None:
        q = q.where(p.merchant_id == merchant_id)
    if on_shelf is not None:
        q = q.where(p.on_shelf.is_(on_shelf))
    page = fetch_page(conn, q, p.id, limit=limit, cursor=cursor, convert=_product)
    by_id = {product.id: product for product in page.items}
    if by_id:
        k = s.skus.c
        for r in conn.execute(
            select(s.skus)
            .where(k.tenant_id == tenant_id, k.product_id.in_(list(by_id)))
            .order_by(k.product_id, k.id)
        ):
            by_id[r.product_id].skus.append(_sku(r))
    return page


def update_product(
    conn: Connection,
    tenant_id: int,
    product_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    pool_amount: Decimal | None = UNSET,
    fund_amount: Decimal | None = UNSET,
    on_shelf: bool | None = None,
) -> Product:
    """Change what is given; ``pool_amount``/``fund_amount`` None clears the override.

    ``on_shelf`` False takes the product off the shelf: it stays listed (orders already made
    keep their lines), new orders of its SKUs are refused (:class:`OffShelf`); True puts it
    back."""
    values: dict[str, Any] = {}
    if on_shelf is not None:
        values["on_shelf"] = on_shelf
    if name is not None:
        values["name"] = name
    if description is not None:
        values["description"] = description
    if pool_amount is not UNSET:
        values["pool_amount_fen"] = _opt_fen(pool_amount, "pool_amount")
    if fund_amount is not UNSET:
        values["fund_amount_fen"] = _opt_fen(fund_amount, "fund_amount")
    p = s.products.c
    if values:
        values["updated_at"] = time.time()
        conn.execute(
            update(s.products).where(p.tenant_id == tenant_id, p.id == product_id).values(values)
        )
    return get_product(conn, tenant_id, product_id)


def product_merchant(conn: Connection, tenant_id: int, product_id: int) -> int:
    """The merchant selling a product (for ownership checks of merchant keys)."""
    p = s.products.c
    mid = conn.execute(
        select(p.merchant_id).where(p.tenant_id == tenant_id, p.id == product_id)
    ).scalar()
    if mid is None:
        raise NotFound(f"no product {product_id}")
    return int(mid)


# ----------------------------------------------------------------------------- SKUs


def _sku(row: Any) -> Sku:
    return Sku(
        id=row.id,
        product_id=row.product_id,
        name=row.name,
        price=from_atoms(row.price_fen, FEN_PLACES),
        stock=row.stock,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def create_sku(
    conn: Connection, tenant_id: int, *, product_id: int, name: str, price: Decimal, stock: int
) -> Sku:
    product_merchant(conn, tenant_id, product_id)  # NotFound for another tenant's product
    k = s.skus.c
    count = len(
        conn.execute(select(k.id).where(k.tenant_id == tenant_id, k.product_id == product_id)).all()
    )
    if count >= MAX_SKUS_PER_PRODUCT:
        raise InvalidCommand(f"a product has at most {MAX_SKUS_PER_PRODUCT} SKUs")
    now = time.time()
    no = next_numbers(conn, tenant_id, "sku")
    conn.execute(
        insert(s.skus).values(
            tenant_id=tenant_id,
            id=no,
            product_id=product_id,
            name=name,
            price_fen=_fen(price, "price", positive=True),
            stock=_check_stock(stock),
            created_at=now,
            updated_at=now,
        )
    )
    return get_sku(conn, tenant_id, no)


def get_sku(conn: Connection, tenant_id: int, sku_id: int) -> Sku:
    k = s.skus.c
    row = conn.execute(select(s.skus).where(k.tenant_id == tenant_id, k.id == sku_id)).first()
    if row is None:
        raise NotFound(f"no SKU {sku_id}")
    return _sku(row)


def sku_merchant(conn: Connection, tenant_id: int, sku_id: int) -> int:
    """The merchant selling a SKU (for ownership checks of merchant keys)."""
    k, p = s.skus.c, s.products.c
    mid = conn.execute(
        select(p.merchant_id)
        .select_from(s.skus.join(s.products, (p.tenant_id == k.tenant_id) & (p.id == k.product_id)))
        .where(k.tenant_id == tenant_id, k.id == sku_id)
    ).scalar()
    if mid is None:
        raise NotFound(f"no SKU {sku_id}")
    return int(mid)


def list_skus(
    conn: Connection,
    tenant_id: int,
    *,
    limit: int,
    cursor: str | None,
    product_id: int | None = None,
) -> Page[Sku]:
    k = s.skus.c
    q = select(s.skus).where(k.tenant_id == tenant_id)
    if product_id is not None:
        q = q.where(k.product_id == product_id)
    return fetch_page(conn, q, k.id, limit=limit, cursor=cursor, convert=_sku)


def update_sku(
    conn: Connection,
    tenant_id: int,
    sku_id: int,
    *,
    name: str | None = None,
    price: Decimal | None = None,
    stock: int | None = None,
) -> Sku:
    """Set name, price and/or stock.  Setting stock overwrites it (a stock count); to add or
    remove units while orders reserve concurrently use :func:`adjust_stock`."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name
    if price is not None:
        values["price_fen"] = _fen(price, "price", positive=True)
    if stock is not None:
        values["stock"] = _check_stock(stock)
    k = s.skus.c
    if values:
        values["updated_at"] = time.time()
        conn.execute(update(s.skus).where(k.tenant_id == tenant_id, k.id == sku_id).values(values))
    return get_sku(conn, tenant_id, sku_id)


def adjust_stock(conn: Connection, tenant_id: int, sku_id: int, delta: int) -> Sku:
    """Add (``delta`` > 0) or remove units; never below zero (OutOfStock), never lost to a
    concurrent reservation."""
    if isinstance(delta, bool) or not -MAX_STOCK <= delta <= MAX_STOCK:
        raise InvalidCommand(f"stock_delta must be an integer from {-MAX_STOCK} to {MAX_STOCK}")
    get_sku(conn, tenant_id, sku_id)  # NotFound first, so OutOfStock means what it says
    ok = (
        reserve_stock(conn, tenant_id, sku_id, -delta)
        if delta < 0
        else delta == 0 or release_stock(conn, tenant_id, sku_id, delta)
    )
    if not ok:
        raise OutOfStock(f"SKU {sku_id} has fewer than {-delta} units")
    return get_sku(conn, tenant_id, sku_id)


_RESERVE = (  # built once: every order runs it (see orders.py on built statements)
    update(s.skus)
    .where(
        s.skus.c.tenant_id == bindparam("t"),
        s.skus.c.id == bindparam("b_id"),
        s.skus.c.stock >= bindparam("n"),
    )
    .values(stock=s.skus.c.stock - bindparam("n"))
)


def reserve_stock(conn: Connection, tenant_id: int, sku_id: int, n: int) -> bool:
    """Take ``n`` units if there are that many: True if taken, False if not (or no such SKU).

    One conditional UPDATE: the database evaluates ``stock >= n`` on the row it locks, so
    concurrent reservers can never take more than there is (PostgreSQL re-checks the WHERE
    after waiting for the row lock; SQLite serialises writers).  Run it in the transaction that
    creates the order, so a rolled-back order gives its units back by itself.
    """
    if isinstance(n, bool) or not 0 < n <= MAX_STOCK:
        raise InvalidCommand(f"quantity must be an integer from 1 to {MAX_STOCK}")
    done = conn.execute(_RESERVE, {"t": tenant_id, "b_id": sku_id, "n": n})
    return bool(done.rowcount == 1)


def release_stock(conn: Connection, tenant_id: int, sku_id: int, n: int) -> bool:
    """Give ``n`` units back (an expired or cancelled order); False if there is no such SKU.

    The caller makes it happen once per reservation (e.g. in the transaction that marks the
    order expired), as this function cannot tell a release from a repeat.
    """
    if isinstance(n, bool) or not 0 < n <= MAX_STOCK:
        raise InvalidCommand(f"quantity must be an integer from 1 to {MAX_STOCK}")
    k = s.skus.c
    done = conn.execute(
        update(s.skus)
        .where(k.tenant_id == tenant_id, k.id == sku_id, k.stock <= MAX_STOCK - n)
        .values(stock=k.stock + n)
    )
    if done.rowcount == 1:
        return True
    if conn.execute(select(k.id).where(k.tenant_id == tenant_id, k.id == sku_id)).first():
        raise InvalidCommand(f"SKU {sku_id} would hold more than {MAX_STOCK} units")
    return False
