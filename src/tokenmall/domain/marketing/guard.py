"""The compliance guard: no configuration pays through more than ``max_levels`` referral levels.

Why: PRC rules on pyramid selling (传销) treat rewards paid through more than a few levels of
recruitment as a warning sign, so the rules (docs/RULES.md section 5) refuse such a
configuration - ``distribution`` with three ratios, or ``chain21`` at all, since its nearest
boss may be any number of levels up - unless the operator records an explicit override with a
reason.  The guard only decides; recording the override (who, when, why) is the caller's audit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenmall.domain.marketing.base import MarketingModel
from tokenmall.errors import InvalidParameter

__all__ = ["MAX_LEVELS", "ComplianceRefused", "check", "too_deep"]

MAX_LEVELS = 2


class ComplianceRefused(InvalidParameter):
    """A configuration pays through more referral levels than allowed, with no override."""

    code = "compliance_refused"


def too_deep(
    models: Iterable[MarketingModel[Any, Any]], max_levels: int = MAX_LEVELS
) -> list[tuple[str, int | None]]:
    """(model name, levels) of every model paying through more than ``max_levels`` levels."""
    out = []
    for m in models:
        levels = m.levels()
        if levels is None or levels > max_levels:
            out.append((m.name, levels))
    return out


def check(
    models: Iterable[MarketingModel[Any, Any]],
    *,
    max_levels: int = MAX_LEVELS,
    override: str | None = None,
) -> str | None:
    """Refuse a too-deep configuration unless ``override`` gives a reason.

    Returns the override reason that made a too-deep configuration acceptable (for the audit
    record), or None when the configuration needed none.
    """
    deep = too_deep(models, max_levels)
    if not deep:
        return None
    reason = (override or "").strip()
    if reason:
        return reason
    what = ", ".join(
        f"{name} pays through {'any number of' if lv is None else lv} levels" for name, lv in deep
    )
    raise ComplianceRefused(
        f"rule max_levels: {what}, more than max_levels={max_levels} referral levels "
        "(PRC rules on pyramid selling); enable it only with a compliance override and a reason"
    )
