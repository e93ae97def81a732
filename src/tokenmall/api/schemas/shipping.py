"""Shipping: the address an order goes to, a merchant's shipment, and an order as one of its
merchants sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from tokenmall.api.schemas.common import InputModel, MoneyOut, utc, utc_or_none
from tokenmall.service.orders import MerchantOrder, Shipment, ShippingAddress
from tokenmall.service.orders.shipping import PHONE_PATTERN, TRACKING_PATTERN

__all__ = [
    "MerchantOrderLineOut",
    "MerchantOrderOut",
    "ShipmentIn",
    "ShipmentOut",
    "ShippingAddressIn",
    "ShippingAddressOut",
]

# printed on a label: no control characters (the service also refuses format characters)
_LABEL = r"^[^\x00-\x1f\x7f]*$"


Label32 = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=_LABEL)]
Label50 = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=_LABEL)]
Label200 = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_LABEL)]


class ShippingAddressIn(InputModel):
    recipient: Label50 = Field(description="Who receives the goods.")
    phone: Annotated[str, StringConstraints(pattern=PHONE_PATTERN)] = Field(
        description="A mainland China mobile number: 11 digits, starting 13-19.",
        examples=["13800138000"],
    )
    province: Label32
    city: Label32
    district: Label32
    detail: Label200 = Field(description="Street, building, room.")

    def to_address(self) -> ShippingAddress:
        return ShippingAddress(
            recipient=self.recipient,
            phone=self.phone,
            province=self.province,
            city=self.city,
            district=self.district,
            detail=self.detail,
        )


class ShippingAddressOut(BaseModel):
    recipient: str
    phone: str
    province: str
    city: str
    district: str
    detail: str

    @classmethod
    def of(cls, a: ShippingAddress) -> ShippingAddressOut:
        return cls(
            recipient=a.recipient,
            phone=a.phone,
            province=a.province,
            city=a.city,
            district=a.district,
            detail=a.detail,
        )

    @classmethod
    def maybe(cls, a: ShippingAddress | None) -> ShippingAddressOut | None:
        return None if a is None else cls.of(a)


class ShipmentIn(InputModel):
    carrier: Label32 = Field(description="The carrier's name or code (顺丰速运, SF, ...).")
    tracking_no: Annotated[str, StringConstraints(pattern=TRACKING_PATTERN)] = Field(
        description="The waybill number: 4-40 letters, digits or '-'."
    )


class ShipmentOut(BaseModel):
    merchant_id: int
    carrier: str
    tracking_no: str
    shipped_at: datetime
    shipped_by: str
    updated_at: datetime = Field(description="Last correction of carrier or number.")
    updated_by: str

    @classmethod
    def of(cls, sh: Shipment) -> ShipmentOut:
        return cls(
            merchant_id=sh.merchant_id,
            carrier=sh.carrier,
            tracking_no=sh.tracking_no,
            shipped_at=utc(sh.shipped_at),
            shipped_by=sh.shipped_by,
            updated_at=utc(sh.updated_at),
            updated_by=sh.updated_by,
        )


class MerchantOrderLineOut(BaseModel):
    sku_id: int
    product_id: int
    name: str
    quantity: int
    unit_price: MoneyOut
    amount: MoneyOut


class MerchantOrderOut(BaseModel):
    """An order as one of its merchants sees it: its own lines only."""

    ref: str
    merchant_id: int
    member: str
    status: str
    amount: MoneyOut = Field(description="The merchant's own lines.")
    mixed: bool = Field(description="Other merchants have goods in this order too.")
    lines: list[MerchantOrderLineOut]
    created_at: datetime
    paid_at: datetime | None
    delivered_at: datetime | None = Field(description="The buyer (or an operator) confirmed.")
    settle_at: datetime | None = Field(description="When the return window ends.")
    closed_at: datetime | None
    shipping_address: ShippingAddressOut | None
    shipment: ShipmentOut | None = Field(description="This merchant's shipment of its lines.")

    @classmethod
    def of(cls, o: MerchantOrder) -> MerchantOrderOut:
        return cls(
            ref=o.ref,
            merchant_id=o.merchant_id,
            member=o.member,
            status=o.status,
            amount=o.amount,
            mixed=o.mixed,
            lines=[
                MerchantOrderLineOut(
                    sku_id=ln.sku_id,
                    product_id=ln.product_id,
                    name=ln.name,
                    quantity=ln.quantity,
                    unit_price=ln.unit_price,
                    amount=ln.amount,
                )
                for ln in o.lines
            ],
            created_at=utc(o.created_at),
            paid_at=utc_or_none(o.paid_at),
            delivered_at=utc_or_none(o.delivered_at),
            settle_at=utc_or_none(o.settle_at),
            closed_at=utc_or_none(o.closed_at),
            shipping_address=ShippingAddressOut.maybe(o.shipping_address),
            shipment=None if o.shipment is None else ShipmentOut.of(o.shipment),
        )
