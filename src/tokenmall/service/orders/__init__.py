"""Orders of the mall: create, pay, confirm delivery, settle, refund, cancel and expire.

One role per module:

=====================  ==================================================================
``service``            the facade (:class:`OrderService`): what routes, jobs and tests call
``models``             read models, errors and limits, row mapping
``statements``         prebuilt statements (the hot path's)
``queries``            reads and lists; a read never writes
``transitions``        the only writer of an order's status; each transition emits its event
``lifecycle``          create, get, cancel, deliver, settle; the expiry and settlement jobs
``paying``             starting a payment and applying one
``notifications``      provider notifications: verify, deduplicate, dispatch; the sandbox
``refunds``            refunds and the provider refunds they send
``shipping``           shipping addresses (checked) and merchants' shipments
``merchant_desk``      a merchant's view of its orders; shipping its lines
``aftersales``         refund requests: asked, accepted (refunded), refused, cancelled
``desks``              the facades of the two above (``OrderService.merchants/aftersales``)
``reconcile``          asking WeChat Pay about what its notifications did not say
``wechat_config``      a tenant's WeChat Pay keys
``providers``          the only module that knows providers by name
=====================  ==================================================================

Money moves only in the ledger, inside the unit of work (:mod:`tokenmall.service.uow`) the
order's own rows are written in: a payment's ``Pay`` (and ``Settle`` when settle_days is 0),
the order's new status, the provider event that caused them and what the event handlers add
commit together or not at all.  Locks come in one order: a transaction that moves value takes
the tenant's lock first, then order rows; one that does not (create, cancel, expire, start a
payment) never takes the tenant lock, so there is no lock cycle on PostgreSQL.
"""

from tokenmall.service.orders.aftersales import (
    MAX_PHOTO_URL,
    MAX_PHOTOS,
    AfterSalesEvent,
    AfterSalesRequest,
    Viewer,
)
from tokenmall.service.orders.lifecycle import expire_orders, settle_due
from tokenmall.service.orders.merchant_desk import MerchantOrder
from tokenmall.service.orders.models import (
    MAX_LINES,
    MAX_ORDER_TOTAL,
    MAX_QUANTITY,
    ORDER_STATUSES,
    PAYMENT_GRACE,
    NotificationResult,
    Order,
    OrderLine,
    OrderRefund,
    OrderStateError,
    Payment,
    ProviderEvent,
    ProviderNotConfigured,
    SandboxCompletion,
    SettleReport,
    Shipment,
    ShippingAddress,
    WeChatConfig,
    check_ref,
)
from tokenmall.service.orders.providers import PaymentHub
from tokenmall.service.orders.service import OrderService

__all__ = [
    "MAX_LINES",
    "MAX_ORDER_TOTAL",
    "MAX_PHOTOS",
    "MAX_PHOTO_URL",
    "MAX_QUANTITY",
    "ORDER_STATUSES",
    "PAYMENT_GRACE",
    "AfterSalesEvent",
    "AfterSalesRequest",
    "MerchantOrder",
    "NotificationResult",
    "Order",
    "OrderLine",
    "OrderRefund",
    "OrderService",
    "OrderStateError",
    "Payment",
    "PaymentHub",
    "ProviderEvent",
    "ProviderNotConfigured",
    "SandboxCompletion",
    "SettleReport",
    "Shipment",
    "ShippingAddress",
    "Viewer",
    "WeChatConfig",
    "check_ref",
    "expire_orders",
    "settle_due",
]
