"""The models' state in the database, loaded as far as an event needs it.

A model of :mod:`tokenmall.domain.marketing` keeps its memory in a plain dataclass of mappings
(grants by order, agents by member, ...) and scalars (queue_free's pot and queue).  The service
gives the model that same dataclass, but each mapping is a :class:`Part`: a ``dict`` that reads
an entry from ``marketing_state`` the first time the model asks for it, and the whole mapping
only when the model walks it (rebate's day close).  After the model ran, :meth:`Session.flush`
writes back the entries that changed, inserts the new ones and deletes the removed ones.  So the
rules stay in one place (the domain), and an event costs what it touches, not the size of the
tenant's history.

Each value is (de)serialised by a Pydantic ``TypeAdapter`` of the field's declared type, so a
``Decimal`` stays exact and a nested dataclass comes back as itself.  The scalars of a model are
one ``root`` document.  ``chain21``'s ``log`` is append-only: its new entries go to
``marketing_moves`` (readable by member) and the list starts empty on every load.

Everything runs under the tenant's lock in the event's transaction: no other writer can change
the rows between the load and the flush.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter
from sqlalchemy import Connection, and_, bindparam, delete, insert, select, update

from tokenmall.domain.marketing import MarketingModel
from tokenmall.money import CNY_PLACES, atoms
from tokenmall.store import schema as s

__all__ = ["Part", "Session"]

_ROOT = "root"
_LOG = "log"

_QUEUE_PAGE = 32
_st = s.marketing_state.c
_HEAD = (
    select(_st.key, _st.n)
    .where(
        _st.tenant_id == bindparam("t"),
        _st.model == bindparam("m"),
        _st.ns == bindparam("ns"),
        _st.n > bindparam("after"),
    )
    .order_by(_st.n)
    .limit(bindparam("page"))
)
_ONE = select(_st.doc, _st.n).where(
    _st.tenant_id == bindparam("t"),
    _st.model == bindparam("m"),
    _st.ns == bindparam("ns"),
    _st.key == bindparam("k"),
)
_ALL = (
    select(_st.key, _st.doc, _st.n)
    .where(_st.tenant_id == bindparam("t"), _st.model == bindparam("m"), _st.ns == bindparam("ns"))
    .order_by(_st.n)
)
_BY_KEYS = select(_st.model, _st.ns, _st.key, _st.doc, _st.n).where(
    _st.tenant_id == bindparam("t"), _st.key.in_(bindparam("keys", expanding=True))
)
_UPDATE = (
    update(s.marketing_state)
    .where(
        and_(
            _st.tenant_id == bindparam("t"),
            _st.model == bindparam("m"),
            _st.ns == bindparam("b_ns"),
            _st.key == bindparam("k"),
        )
    )
    .values(doc=bindparam("doc"))
)
_INSERT = insert(s.marketing_state)
_MOVES = insert(s.marketing_moves)
_DELETE = delete(s.marketing_state).where(
    _st.tenant_id == bindparam("t"),
    _st.model == bindparam("m"),
    _st.ns == bindparam("ns"),
    _st.key == bindparam("k"),
)


@dataclass(slots=True)
class _Writes:
    """The rows one flush writes, executed together (``executemany``) per kind."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Field:
    path: tuple[str, ...]  # attribute path from the state, e.g. ("book", "grants")
    kind: str  # part | root | log
    adapter: TypeAdapter[Any] | None

    @property
    def ns(self) -> str:
        return ".".join(self.path)


@cache
def _layout(state_type: type) -> tuple[_Field, ...]:
    """Where each field of a model's state lives: mappings are parts, lists named ``log``
    are moves, everything else is a scalar of the root document (nested dataclasses recurse)."""
    out: list[_Field] = []

    def walk(cls: type, path: tuple[str, ...]) -> None:
        hints = get_type_hints(cls)
        for f in fields(cls):
            hint = hints[f.name]
            here = (*path, f.name)
            if isinstance(hint, type) and is_dataclass(hint):
                walk(hint, here)
            elif get_origin(hint) is dict:
                out.append(_Field(here, "part", TypeAdapter(get_args(hint)[1])))
            elif get_origin(hint) is deque:
                out.append(_Field(here, "queue", None))
            elif f.name == _LOG:
                out.append(_Field(here, "log", None))
            else:
                out.append(_Field(here, "root", TypeAdapter(hint)))

    walk(state_type, ())
    return tuple(out)


class Part(dict[str, Any]):
    """One mapping of a model's state, read from the database entry by entry on first use."""

    __slots__ = ("_absent", "_all", "_field", "_model", "_removed")

    def __init__(self, model: _ModelState, field: _Field) -> None:
        super().__init__()
        self._model = model
        self._field = field
        self._absent: set[str] = set()
        self._removed: set[str] = set()
        self._all = False

    def _ensure(self, key: str) -> None:
        if self._all or key in self._absent or dict.__contains__(self, key):
            return
        value = self._model.load(self._field, key)
        if value is _MISSING:
            self._absent.add(key)
        else:
            dict.__setitem__(self, key, value)

    def load_all(self) -> None:
        """Every entry, in the order they were first written (then the ones not written)."""
        if self._all:
            return
        loaded = dict.copy(self)  # not dict(self): that calls the keys() below
        ordered: list[tuple[str, Any]] = []
        for key, value in self._model.load_all(self._field):
            if key in self._removed:
                continue
            ordered.append((key, loaded.pop(key) if key in loaded else value))
        ordered += loaded.items()
        dict.clear(self)
        dict.update(self, ordered)
        self._all = True

    # --- the dict interface the domain uses, made lazy --------------------------------------

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._ensure(key)
        return dict.__contains__(self, key)

    def __getitem__(self, key: str) -> Any:
        self._ensure(key)
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        self._ensure(key)
        return dict.get(self, key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._ensure(key)
        if not dict.__contains__(self, key):
            self._absent.discard(key)
            self._removed.discard(key)
        return dict.setdefault(self, key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._absent.discard(key)
        self._removed.discard(key)
        dict.__setitem__(self, key, value)

    def pop(self, key: str, *default: Any) -> Any:
        self._ensure(key)
        if dict.__contains__(self, key):
            self._removed.add(key)
            self._absent.add(key)
        return dict.pop(self, key, *default)

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    def __iter__(self) -> Iterator[str]:
        self.load_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.load_all()
        return dict.__len__(self)

    def keys(self) -> Any:
        self.load_all()
        return dict.keys(self)

    def values(self) -> Any:
        self.load_all()
        return dict.values(self)

    def items(self) -> Any:
        self.load_all()
        return dict.items(self)

    def loaded(self) -> Iterable[tuple[str, Any]]:
        """The entries in memory now (what a flush may have to write), without loading more."""
        return list(dict.items(self))


class Queue(deque[str]):
    """A model's queue (queue_free's waiting orders) as rows: one per member of the queue,
    ``n`` its place.  Only what the model touches is read: the head a page at a time, a
    member by its key; its length is kept in the root document.  The domain uses ``len``,
    ``[0]``, ``popleft``, ``append``, ``in`` and ``remove``; iterating reads it whole."""

    def __init__(self, model: _ModelState, field: _Field) -> None:
        super().__init__()
        self._model = model
        self._field = field
        root = model.root_doc
        self._len = int(root.get(f"{field.ns}#len", 0))
        self._next = int(root.get(f"{field.ns}#next", 0))
        self._head: list[tuple[int, str]] = []  # persisted, from the head, not removed
        self._after = -1  # the last n read into _head
        self._done = False  # every persisted member has been read into _head
        self._added: list[tuple[int, str]] = []  # appended in this transaction
        self._removed: set[str] = set()  # persisted members removed in this transaction

    def _fill(self) -> None:
        if self._done:
            return
        rows = self._model.session.head(self._model.name, self._field.ns, self._after)
        if len(rows) < _QUEUE_PAGE:
            self._done = True
        for key, n in rows:
            self._after = n
            if key not in self._removed:
                self._head.append((n, key))

    def _first(self) -> tuple[list[tuple[int, str]], int]:
        while not self._head and not self._done:
            self._fill()
        if self._head:
            return self._head, 0
        if self._added:
            return self._added, 0
        raise IndexError("the queue is empty")

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __getitem__(self, index: Any) -> Any:
        if index != 0:
            return list(self)[index]
        where, i = self._first()
        return where[i][1]

    def popleft(self) -> str:
        where, i = self._first()
        _, key = where.pop(i)
        if where is self._head:
            self._removed.add(key)
        self._len -= 1
        return key

    def append(self, key: str) -> None:
        self._next += 1
        self._added.append((self._next, key))
        self._len += 1

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or key in self._removed:
            return False
        if any(k == key for _, k in self._added) or any(k == key for _, k in self._head):
            return True
        return self._model.session.row(self._model.name, self._field.ns, key) is not None

    def remove(self, key: str) -> None:
        for where in (self._head, self._added):
            for i, (_, k) in enumerate(where):
                if k == key:
                    where.pop(i)
                    if where is self._head:
                        self._removed.add(key)
                    self._len -= 1
                    return
        if key in self:
            self._removed.add(key)
            self._len -= 1
            return
        raise ValueError(f"{key!r} is not in the queue")

    def __iter__(self) -> Iterator[str]:
        while not self._done:
            self._fill()
        return iter([k for _, k in self._head] + [k for _, k in self._added])

    def flush(self, root: dict[str, Any], w: _Writes) -> None:
        """Write the appended members, delete the removed ones; the counters go to ``root``."""
        m, session = self._model, self._model.session
        ns = self._field.ns
        for key in self._removed:
            w.deletes.append({"t": session.tenant_id, "m": m.name, "ns": ns, "k": key})
        if self._added:
            w.inserts.extend(
                {
                    "tenant_id": session.tenant_id,
                    "model": m.name,
                    "ns": ns,
                    "key": key,
                    "n": n,
                    "doc": "",
                }
                for n, key in self._added
            )
        if self._done:  # else the next page reads them, after the members not read yet
            self._head += self._added
        self._added = []
        self._removed.clear()
        root[f"{ns}#len"] = self._len
        root[f"{ns}#next"] = self._next


class _Missing:
    pass


_MISSING: Any = _Missing()


class _ModelState:
    """One model's state in one transaction: the dataclass the domain sees, and its rows."""

    def __init__(self, session: Session, model: MarketingModel[Any, Any]) -> None:
        self.session = session
        self.name = model.name
        self.state = model.new_state()
        state_type: type = type(self.state)
        self.layout = _layout(state_type)
        self.originals: dict[tuple[str, str], str] = {}  # (ns, key) -> doc as loaded
        self.parts: list[Part] = []
        self.queues: list[Queue] = []
        self.root_doc: dict[str, Any] = session.root(self.name)
        self.root_text = json.dumps(self.root_doc, sort_keys=True)
        for f in self.layout:
            if f.kind == "part":
                part = Part(self, f)
                self.parts.append(part)
                self._set(f.path, part)
            elif f.kind == "queue":
                queue = Queue(self, f)
                self.queues.append(queue)
                self._set(f.path, queue)
            elif f.kind == "root" and f.ns in self.root_doc:
                assert f.adapter is not None
                self._set(f.path, f.adapter.validate_python(self.root_doc[f.ns]))

    def _get(self, path: tuple[str, ...]) -> Any:
        obj = self.state
        for name in path:
            obj = getattr(obj, name)
        return obj

    def _set(self, path: tuple[str, ...], value: Any) -> None:
        setattr(self._get(path[:-1]), path[-1], value)

    def load(self, f: _Field, key: str) -> Any:
        found = self.session.row(self.name, f.ns, key)
        if found is None:
            return _MISSING
        assert f.adapter is not None
        self.originals[(f.ns, key)] = found
        return f.adapter.validate_json(found)

    def load_all(self, f: _Field) -> list[tuple[str, Any]]:
        assert f.adapter is not None
        out = []
        for key, doc in self.session.rows(self.name, f.ns):
            self.originals.setdefault((f.ns, key), doc)
            out.append((key, f.adapter.validate_json(doc)))
        return out

    def flush(self, at: float, w: _Writes) -> None:
        tid = self.session.tenant_id
        # entries are read back in the order they were written (rebate walks its grants in
        # settlement order): the time in microseconds, under the tenant's lock, then a count
        n = time.time_ns() // 1000 * 1000
        inserts = []
        for part in self.parts:
            f = part._field
            assert f.adapter is not None
            for key, value in part.loaded():
                doc = f.adapter.dump_json(value).decode()
                before = self.originals.get((f.ns, key))
                if before is None:
                    n += 1
                    inserts.append(
                        {
                            "tenant_id": tid,
                            "model": self.name,
                            "ns": f.ns,
                            "key": key,
                            "n": n,
                            "doc": doc,
                        }
                    )
                    self.originals[(f.ns, key)] = doc
                elif before != doc:
                    w.updates.append({"t": tid, "m": self.name, "b_ns": f.ns, "k": key, "doc": doc})
                    self.originals[(f.ns, key)] = doc
            for key in part._removed:
                if (f.ns, key) in self.originals:
                    w.deletes.append({"t": tid, "m": self.name, "ns": f.ns, "k": key})
                    del self.originals[(f.ns, key)]
            part._removed.clear()
        w.inserts += inserts
        root: dict[str, Any] = {}
        for queue in self.queues:
            queue.flush(root, w)
        for f in self.layout:
            if f.kind == "root":
                assert f.adapter is not None
                root[f.ns] = f.adapter.dump_python(self._get(f.path), mode="json")
            elif f.kind == "log":
                log = self._get(f.path)
                if log:
                    self._moves(log, at)
                    log.clear()
        text = json.dumps(root, sort_keys=True)
        if root and text != self.root_text:
            if self.root_doc:
                w.updates.append({"t": tid, "m": self.name, "b_ns": _ROOT, "k": "", "doc": text})
            else:
                w.inserts.append(
                    {
                        "tenant_id": tid,
                        "model": self.name,
                        "ns": _ROOT,
                        "key": "",
                        "n": 0,
                        "doc": text,
                    }
                )
            self.root_doc, self.root_text = root, text

    def _moves(self, log: list[Any], at: float) -> None:
        rows = [
            {
                "tenant_id": self.session.tenant_id,
                "model": self.name,
                "kind": e.kind,
                "member": e.member,
                "order_ref": e.order,
                "other": e.other,
                "amount": atoms(e.amount, CNY_PLACES),
                "at": at,
            }
            for e in log
        ]
        self.session.conn.execute(_MOVES, rows)


class Session:
    """The models' state of one tenant in one transaction (under the tenant's lock)."""

    def __init__(self, conn: Connection, tenant_id: int) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self._states: dict[str, _ModelState] = {}
        self._rows: dict[tuple[str, str, str], str] = {}
        self._fetched: set[str] = set()  # keys read for every model and part at once

    def prefetch(self, keys: Iterable[str | None]) -> None:
        """Read every model's entries under ``keys`` (an order, its buyer, their referrer)
        in one query; an entry not found then needs no query of its own."""
        # "" is every model's root document
        todo = sorted({"", *(k for k in keys if k is not None)} - self._fetched)
        if not todo:
            return
        for r in self.conn.execute(_BY_KEYS, {"t": self.tenant_id, "keys": todo}):
            self._rows.setdefault((r.model, r.ns, r.key), r.doc)
        self._fetched.update(todo)

    def state(self, model: MarketingModel[Any, Any]) -> Any:
        """The model's state dataclass, bound to this transaction's rows."""
        found = self._states.get(model.name)
        if found is None:
            found = self._states[model.name] = _ModelState(self, model)
        return found.state

    def root(self, model: str) -> dict[str, Any]:
        doc = self.row(model, _ROOT, "")
        return {} if doc is None else dict(json.loads(doc))

    def row(self, model: str, ns: str, key: str) -> str | None:
        found = self._rows.get((model, ns, key))
        if found is not None or key in self._fetched:
            return found
        doc = self.conn.execute(
            _ONE, {"t": self.tenant_id, "m": model, "ns": ns, "k": key}
        ).scalar()
        return None if doc is None else str(doc)

    def head(self, model: str, ns: str, after: int) -> list[tuple[str, int]]:
        """A page of a queue's members after place ``after``, in order."""
        found = self.conn.execute(
            _HEAD, {"t": self.tenant_id, "m": model, "ns": ns, "after": after, "page": _QUEUE_PAGE}
        )
        return [(str(r.key), int(r.n)) for r in found]

    def rows(self, model: str, ns: str) -> list[tuple[str, str]]:
        return [
            (str(r.key), str(r.doc))
            for r in self.conn.execute(_ALL, {"t": self.tenant_id, "m": model, "ns": ns})
        ]

    def flush(self, at: float) -> None:
        """Write back what the models changed (then the next event reads it afresh): one
        statement per kind of write, over every model."""
        w = _Writes()
        for st in self._states.values():
            st.flush(at, w)
        if w.deletes:
            self.conn.execute(_DELETE, w.deletes)
        if w.updates:
            self.conn.execute(_UPDATE, w.updates)
        if w.inserts:
            self.conn.execute(_INSERT, w.inserts)
