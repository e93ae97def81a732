"""NFG in the service: collections, tokens, the exchange and the token log, over the store.

Files by role: ``collections`` (create, rules, product link, real names), ``tokens`` (mint,
transfer, approve, burn, redeem; the token reads), ``market`` (list, buy, cancel), ``trades``
(a listing bought with CNY through the order flow), ``log`` (the hash chain of token events,
anchors, proofs, scheduled anchoring), ``orders`` (the order flow's handlers: a paid order
mints), ``session`` (one command's registry rebuilt from the store), ``rows`` (columns <->
domain).
The rules themselves are :mod:`tokenmall.domain.nfg`'s.
"""

from tokenmall.service.nfg import collections, log, market, orders, tokens, trades

__all__ = ["collections", "log", "market", "orders", "tokens", "trades"]
