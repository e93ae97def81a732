# pragma version ~=0.4.1
"""
@title TokenmallNFG
@notice A minimal ERC-721 (EIP-721) contract mirroring one tokenmall NFG collection.
        Token ids are the collection's serial numbers.  Only the deployer (the platform)
        mints; owners, approved addresses and operators transfer and burn as ERC-721 says.
        safeTransferFrom calls onERC721Received on a receiving contract.
@dev Written for tokenmall; no upgrade path, no ether: every function is non-payable.
"""

from ethereum.ercs import IERC165

implements: IERC165


interface IERC721Receiver:
    def onERC721Received(
        _operator: address, _from: address, _tokenId: uint256, _data: Bytes[1024]
    ) -> bytes4: nonpayable


event Transfer:
    _from: indexed(address)
    _to: indexed(address)
    _tokenId: indexed(uint256)

event Approval:
    _owner: indexed(address)
    _approved: indexed(address)
    _tokenId: indexed(uint256)

event ApprovalForAll:
    _owner: indexed(address)
    _operator: indexed(address)
    _approved: bool


ERC165_ID: constant(bytes4) = 0x01ffc9a7
ERC721_ID: constant(bytes4) = 0x80ac58cd
ERC721_METADATA_ID: constant(bytes4) = 0x5b5e139f
RECEIVED: constant(bytes4) = 0x150b7a02  # bytes4(keccak256("onERC721Received(address,address,uint256,bytes)"))

owner: public(address)
name: public(String[64])
symbol: public(String[16])
maxSupply: public(uint256)
totalSupply: public(uint256)
baseURI: String[128]

_owners: HashMap[uint256, address]
_balances: HashMap[address, uint256]
_approvals: HashMap[uint256, address]
_operators: HashMap[address, HashMap[address, bool]]
_issued: HashMap[uint256, bool]  # a burned id is never minted again


@deploy
def __init__(_name: String[64], _symbol: String[16], _maxSupply: uint256, _baseURI: String[128]):
    self.owner = msg.sender
    self.name = _name
    self.symbol = _symbol
    self.maxSupply = _maxSupply
    self.baseURI = _baseURI


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    return interface_id in [ERC165_ID, ERC721_ID, ERC721_METADATA_ID]


@external
@view
def balanceOf(_owner: address) -> uint256:
    assert _owner != empty(address), "ERC721: balance of the zero address"
    return self._balances[_owner]


@external
@view
def ownerOf(_tokenId: uint256) -> address:
    holder: address = self._owners[_tokenId]
    assert holder != empty(address), "ERC721: nonexistent token"
    return holder


@external
@view
def exists(_tokenId: uint256) -> bool:
    """@notice Whether the token is minted and not burned (ownerOf would not revert)."""
    return self._owners[_tokenId] != empty(address)


@external
@view
def getApproved(_tokenId: uint256) -> address:
    assert self._owners[_tokenId] != empty(address), "ERC721: nonexistent token"
    return self._approvals[_tokenId]


@external
@view
def isApprovedForAll(_owner: address, _operator: address) -> bool:
    return self._operators[_owner][_operator]


@external
@view
def tokenURI(_tokenId: uint256) -> String[206]:
    assert self._owners[_tokenId] != empty(address), "ERC721: nonexistent token"
    return concat(self.baseURI, uint2str(_tokenId))


@internal
@view
def _authorized(_spender: address, _tokenId: uint256) -> bool:
    holder: address = self._owners[_tokenId]
    return (
        _spender == holder
        or _spender == self._approvals[_tokenId]
        or self._operators[holder][_spender]
    )


@internal
def _transfer(_from: address, _to: address, _tokenId: uint256):
    holder: address = self._owners[_tokenId]
    assert holder != empty(address), "ERC721: nonexistent token"
    assert _to != empty(address), "ERC721: invalid receiver"
    assert self._authorized(msg.sender, _tokenId), "ERC721: insufficient approval"
    assert _from == holder, "ERC721: incorrect owner"
    self._approvals[_tokenId] = empty(address)
    self._balances[_from] -= 1
    self._balances[_to] += 1
    self._owners[_tokenId] = _to
    log Transfer(_from=_from, _to=_to, _tokenId=_tokenId)


@external
def approve(_approved: address, _tokenId: uint256):
    holder: address = self._owners[_tokenId]
    assert holder != empty(address), "ERC721: nonexistent token"
    assert msg.sender == holder or self._operators[holder][msg.sender], "ERC721: invalid approver"
    self._approvals[_tokenId] = _approved
    log Approval(_owner=holder, _approved=_approved, _tokenId=_tokenId)


@external
def setApprovalForAll(_operator: address, _approved: bool):
    assert _operator != empty(address), "ERC721: invalid operator"
    self._operators[msg.sender][_operator] = _approved
    log ApprovalForAll(_owner=msg.sender, _operator=_operator, _approved=_approved)


@external
def transferFrom(_from: address, _to: address, _tokenId: uint256):
    self._transfer(_from, _to, _tokenId)


@external
def safeTransferFrom(_from: address, _to: address, _tokenId: uint256, _data: Bytes[1024] = b""):
    self._transfer(_from, _to, _tokenId)
    if _to.is_contract:
        answer: bytes4 = extcall IERC721Receiver(_to).onERC721Received(
            msg.sender, _from, _tokenId, _data
        )
        assert answer == RECEIVED, "ERC721: invalid receiver"


@external
def mint(_to: address, _tokenId: uint256):
    assert msg.sender == self.owner, "only the platform mints"
    assert _to != empty(address), "ERC721: invalid receiver"
    assert _tokenId >= 1 and _tokenId <= self.maxSupply, "serial outside the collection"
    assert not self._issued[_tokenId], "serial already issued"
    self._issued[_tokenId] = True
    self._owners[_tokenId] = _to
    self._balances[_to] += 1
    self.totalSupply += 1
    log Transfer(_from=empty(address), _to=_to, _tokenId=_tokenId)


@external
def burn(_tokenId: uint256):
    holder: address = self._owners[_tokenId]
    assert holder != empty(address), "ERC721: nonexistent token"
    assert self._authorized(msg.sender, _tokenId), "ERC721: insufficient approval"
    self._approvals[_tokenId] = empty(address)
    self._balances[holder] -= 1
    self._owners[_tokenId] = empty(address)
    self.totalSupply -= 1
    log Transfer(_from=holder, _to=empty(address), _tokenId=_tokenId)
