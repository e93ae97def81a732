"""A tenant's WeChat Pay configuration: store it, show what may be shown, refresh certificates."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update

from tokenmall.errors import InvalidCommand
from tokenmall.payments import ProviderConfigError
from tokenmall.payments.base import system_clock
from tokenmall.service.errors import Conflict
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.models import ProviderNotConfigured, WeChatConfig
from tokenmall.service.orders.providers import WECHAT, WECHAT_API, check_api_url, wechat_entry
from tokenmall.store import schema as s

log = logging.getLogger("tokenmall.orders")


def set_wechat_config(
    ctx: OrderContext,
    tenant_id: int,
    *,
    api_v3_key: str,
    platform_keys: Mapping[str, str],
    mch_id: str | None,
    actor: str,
    app_id: str | None = None,
    merchant_serial: str | None = None,
    merchant_private_key: str | None = None,
    notify_url: str | None = None,
    api_base_url: str | None = None,
) -> WeChatConfig:
    """See :meth:`tokenmall.service.orders.OrderService.set_wechat_config`."""
    config: dict[str, Any] = {
        "api_v3_key": api_v3_key,
        "keys": dict(platform_keys),
        "mch_id": mch_id,
    }
    outbound = {
        "app_id": app_id,
        "merchant_serial": merchant_serial,
        "merchant_private_key": merchant_private_key,
        "notify_url": notify_url,
    }
    given = [k for k, v in outbound.items() if v]
    try:
        if given:
            missing = [k for k, v in outbound.items() if not v]
            if mch_id is None:
                missing.insert(0, "mch_id")
            if missing:
                raise ProviderConfigError(
                    "outbound WeChat Pay calls need all of mch_id, app_id, merchant_serial, "
                    f"merchant_private_key and notify_url; missing: {', '.join(missing)}"
                )
            outbound["api_base_url"] = check_api_url(api_base_url or WECHAT_API)
            config["outbound"] = outbound
        elif api_base_url:
            raise ProviderConfigError("api_base_url is only used with outbound calls")
        api = wechat_entry(config, system_clock).api
        if api is not None:
            api.close()
    except ProviderConfigError as exc:
        raise InvalidCommand(str(exc)) from None
    now = ctx.clock()
    p = s.payment_settings.c
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        done = tx.conn.execute(
            update(s.payment_settings)
            .where(p.tenant_id == tenant_id, p.provider == WECHAT)
            .values(config=json.dumps(config), updated_at=now, updated_by=actor)
        )
        if done.rowcount == 0:
            tx.conn.execute(
                insert(s.payment_settings).values(
                    tenant_id=tenant_id,
                    provider=WECHAT,
                    config=json.dumps(config),
                    updated_at=now,
                    updated_by=actor,
                )
            )
    return _shown(config, now, actor)


def refresh_wechat_certificates(
    ctx: OrderContext, tenant_id: int, *, actor: str
) -> tuple[WeChatConfig, list[str]]:
    """See :meth:`tokenmall.service.orders.OrderService.refresh_wechat_certificates`."""
    p = s.payment_settings.c
    with ctx.store.read() as conn:
        row = conn.execute(
            select(s.payment_settings).where(p.tenant_id == tenant_id, p.provider == WECHAT)
        ).first()
        api = ctx.hub.wechat_api(conn, tenant_id)
    if row is None or api is None:
        raise ProviderNotConfigured(
            "downloading WeChat Pay certificates needs the outbound configuration"
        )
    config = json.loads(row.config)
    certs = api.download_certificates(config["api_v3_key"])
    added = [c.serial for c in certs if c.serial not in config["keys"]]
    if not added:
        return _shown(config, row.updated_at, row.updated_by), []
    config["keys"] = {**{c.serial: c.pem for c in certs if c.serial in added}, **config["keys"]}
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        done = tx.conn.execute(
            update(s.payment_settings)
            .where(
                p.tenant_id == tenant_id,
                p.provider == WECHAT,
                p.updated_at == row.updated_at,  # no lost update of a concurrent change
            )
            .values(config=json.dumps(config), updated_at=now, updated_by=actor)
        )
    if done.rowcount != 1:
        raise Conflict("the WeChat Pay configuration changed meanwhile; ask again")
    log.info("tenant %s: WeChat Pay platform certificates added: %s", tenant_id, added)
    return _shown(config, now, actor), added


def get_wechat_config(ctx: OrderContext, tenant_id: int) -> WeChatConfig:
    p = s.payment_settings.c
    with ctx.store.read() as conn:
        row = conn.execute(
            select(s.payment_settings).where(p.tenant_id == tenant_id, p.provider == WECHAT)
        ).first()
    if row is None:
        return WeChatConfig(False)
    return _shown(json.loads(row.config), row.updated_at, row.updated_by)


def _shown(config: Mapping[str, Any], at: float, by: str | None) -> WeChatConfig:
    """What may be shown of a stored configuration: never a key, only serials and ids."""
    out = config.get("outbound") or {}
    return WeChatConfig(
        True,
        config.get("mch_id"),
        sorted(config["keys"]),
        at,
        by,
        outbound=bool(out),
        app_id=out.get("app_id"),
        merchant_serial=out.get("merchant_serial"),
        notify_url=out.get("notify_url"),
        api_base_url=out.get("api_base_url"),
    )
