"""Every error the NFG rules raise; names follow ERC-721's custom errors (OpenZeppelin 5).

InvalidCommand (tokenmall.errors)
└── NFGError
    ├── ERC721Error                      the token rules every ERC-721 contract enforces
    │   ├── ERC721NonexistentToken       never minted, or burned
    │   ├── ERC721InsufficientApproval   caller is not owner, approved nor operator
    │   │                                (alias NotOwnerNorApproved, OpenZeppelin 4's wording)
    │   ├── ERC721InvalidApprover        approve by someone who is not owner nor operator
    │   ├── ERC721InvalidOperator        an empty operator
    │   ├── ERC721InvalidOwner           the balance of nobody
    │   ├── ERC721InvalidReceiver        a transfer or mint to nobody
    │   └── ERC721IncorrectOwner         ``from`` is not the token's owner
    ├── PolicyError                      the collection's own rules (Chinese platform rules)
    │   ├── TransferForbidden            transfers off, or a sale when only gifts are allowed
    │   ├── HoldingPeriod                held for less than the collection's minimum
    │   ├── DailyLimit                   the sender's transfers today reached the limit
    │   ├── SelfTransfer                 to oneself
    │   ├── RightUsedUp                  a right with no use left (redeem, or transfer)
    │   ├── RightExpired                 a right past its expiry
    │   ├── NotRedeemable                redeem on a physical item
    │   ├── RealNameRequired             sender or receiver without a verified real name
    │   └── SupplyExhausted              the collection's maximum is minted (also a
    │                                    tokenmall.errors.SupplyExhausted)
    └── ExchangeError                    the exchange
        ├── ExchangeClosed               the collection's exchange mode refuses listings/buys
        ├── UnknownListing
        ├── ListingClosed                cancelled or sold
        ├── ListingStale                 the token changed (owner, uses) since it was listed
        ├── ListingReserved              a CNY buyer's order holds it while it is paid
        ├── AlreadyListed
        ├── PriceFixed                   automatic appreciation sets the price
        └── AssetNotAccepted

Every error has a stable ``code`` for machines and a message that says what to do.
"""

from __future__ import annotations

from tokenmall import errors as _base

__all__ = [
    "AlreadyListed",
    "AssetNotAccepted",
    "DailyLimit",
    "ERC721Error",
    "ERC721IncorrectOwner",
    "ERC721InsufficientApproval",
    "ERC721InvalidApprover",
    "ERC721InvalidOperator",
    "ERC721InvalidOwner",
    "ERC721InvalidReceiver",
    "ERC721NonexistentToken",
    "ExchangeClosed",
    "ExchangeError",
    "HoldingPeriod",
    "ListingClosed",
    "ListingReserved",
    "ListingStale",
    "NFGError",
    "NotOwnerNorApproved",
    "NotRedeemable",
    "PolicyError",
    "PriceFixed",
    "RealNameRequired",
    "RightExpired",
    "RightUsedUp",
    "SelfTransfer",
    "SupplyExhausted",
    "TransferForbidden",
    "UnknownListing",
]


class NFGError(_base.InvalidCommand):
    """Base of the NFG rules' errors: nothing changed."""

    code = "nfg_error"


class ERC721Error(NFGError):
    code = "erc721_error"


class ERC721NonexistentToken(ERC721Error):
    code = "erc721_nonexistent_token"


class ERC721InsufficientApproval(ERC721Error):
    code = "erc721_insufficient_approval"


NotOwnerNorApproved = ERC721InsufficientApproval


class ERC721InvalidApprover(ERC721Error):
    code = "erc721_invalid_approver"


class ERC721InvalidOperator(ERC721Error):
    code = "erc721_invalid_operator"


class ERC721InvalidOwner(ERC721Error):
    code = "erc721_invalid_owner"


class ERC721InvalidReceiver(ERC721Error):
    code = "erc721_invalid_receiver"


class ERC721IncorrectOwner(ERC721Error):
    code = "erc721_incorrect_owner"


class PolicyError(NFGError):
    code = "nfg_policy"


class TransferForbidden(PolicyError):
    code = "nfg_transfer_forbidden"


class HoldingPeriod(PolicyError):
    code = "nfg_holding_period"


class DailyLimit(PolicyError):
    code = "nfg_daily_limit"


class SelfTransfer(PolicyError):
    code = "nfg_self_transfer"


class RightUsedUp(PolicyError):
    code = "nfg_right_used_up"


class RightExpired(PolicyError):
    code = "nfg_right_expired"


class NotRedeemable(PolicyError):
    code = "nfg_not_redeemable"


class RealNameRequired(PolicyError):
    code = "nfg_real_name_required"


class SupplyExhausted(PolicyError, _base.SupplyExhausted):
    code = "nfg_supply_exhausted"


class ExchangeError(NFGError):
    code = "nfg_exchange"


class ExchangeClosed(ExchangeError):
    code = "nfg_exchange_closed"


class UnknownListing(ExchangeError):
    code = "nfg_unknown_listing"


class ListingClosed(ExchangeError):
    code = "nfg_listing_closed"


class ListingStale(ExchangeError):
    code = "nfg_listing_stale"


class ListingReserved(ExchangeError):
    """A buyer's CNY order reserves the listing until it is paid, cancelled or expires."""

    code = "nfg_listing_reserved"


class AlreadyListed(ExchangeError):
    code = "nfg_already_listed"


class PriceFixed(ExchangeError):
    code = "nfg_price_fixed"


class AssetNotAccepted(ExchangeError):
    code = "nfg_asset_not_accepted"
