"""Replay of recorded Binance depth, bookTicker and trade streams as a market source.

It is long (about 650 lines) because decoding a recording, rebuilding its book from
snapshot and diffs, and merging its streams in time are one reader's steps over one state.
"""

from __future__ import annotations

import functools
import gzip
import heapq
import io
import itertools
import operator
import threading
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any, Generic, Literal, NamedTuple, TypeVar, Union

import msgspec
import numpy as np

from venues.model import Instrument, Side
from venues.sim.calibration import REPLAY_INSTRUMENTS
from venues.sim.market import DepthUpdate, MarketUpdate, TopOfBook, TradePrint

Levels = list[tuple[float, float]]
T = TypeVar("T")


# Wire schemas: only the fields replay needs. Unknown fields are allowed on purpose (the
# recording has more, and skipping them is cheaper). strict=False turns Binance's decimal
# strings into floats inside the decoder; round(value / step) is then exact, because
# value / step < 2**40 keeps the float error under 1e-3 step (the tests check against Decimal).
class _Depth(msgspec.Struct, frozen=True, gc=False):
    first_id: int = msgspec.field(name="U")
    last_id: int = msgspec.field(name="u")
    bids: Levels = msgspec.field(name="b")
    asks: Levels = msgspec.field(name="a")


class _Ticker(msgspec.Struct, frozen=True, gc=False):
    update_id: int = msgspec.field(name="u")
    bid: float = msgspec.field(name="b")
    bid_qty: float = msgspec.field(name="B")
    ask: float = msgspec.field(name="a")
    ask_qty: float = msgspec.field(name="A")


class _Trade(msgspec.Struct, frozen=True, gc=False):
    trade_id: int = msgspec.field(name="t")
    price: float = msgspec.field(name="p")
    qty: float = msgspec.field(name="q")
    buyer_is_maker: bool = msgspec.field(name="m")
    kind: str = msgspec.field(name="X", default="MARKET")  # futures only


class _Snapshot(msgspec.Struct, frozen=True, gc=False):
    """The REST depth snapshot the recorder fetched after subscribing (a bare line)."""

    last_id: int = msgspec.field(name="lastUpdateId")
    bids: Levels
    asks: Levels


class _Envelope(msgspec.Struct, frozen=True, gc=False):
    stream: str | None = None  # None: the bare snapshot line


class _Msg(msgspec.Struct, Generic[T], frozen=True, gc=False):
    data: T


# Dispatch on the stream name (`<symbol>@<kind>[@<speed>]`), not on `e`: spot bookTicker
# messages carry no `e`.
_DEPTH, _TICKER, _TRADE = 0, 1, 2  # record kinds, in decoded chunks too
_KINDS = {b"depth": _DEPTH, b"bookTicker": _TICKER, b"trade": _TRADE}
_TYPES = (_Depth, _Ticker, _Trade)  # by kind
_DECODERS = tuple(msgspec.json.Decoder(_Msg[t], strict=False) for t in _TYPES)
_SNAPSHOT = msgspec.json.Decoder(_Snapshot, strict=False)
_COMPACT = b' {"stream":'  # between a line's receive time and its message, as recorded
_ENVELOPE = msgspec.json.Decoder(_Envelope)
_STREAM = b'{"stream":"'


class ReplayRecord(NamedTuple):
    """One replayed message: its protocol update and Binance's update ids for it.

    Depth diff: `U` and `u`; the snapshot: 0 and its `lastUpdateId` (or the newest diff merged
    into it); bookTicker: `u` twice; trade: the trade id twice.
    """

    ts_ns: int
    update: MarketUpdate
    first_id: int
    last_id: int


class ReplayMarket:
    """A `MarketSource` replaying recorded Binance streams, several symbols in time order.

    Recorded receive time `t` plays at `start_ns + (t - t0) / speed`, `t0` being the earliest
    line over all files, so symbols stay aligned. Files are decoded in chunks of a few MB as
    `updates` goes, into numpy columns (~25 MB for the two perps, against ~140 MB as Python
    objects). The decoded chunks are kept for the process (`cached`), so the next replay of
    the same file, a backtest's next run, decodes nothing: it only makes the updates.

    The book: each file holds the REST snapshot (1000 levels a side) the recorder fetched
    just after subscribing. Depth diffs before it (or all of them, in a file without one)
    are replayed as they come: levels appear as they are updated; the bookTicker tells the
    touch. At the snapshot one `DepthUpdate` sets every snapshot level, except those a diff
    newer than the snapshot (`u` > `lastUpdateId`) already set, and deletes older levels it
    does not list; later diffs older than the snapshot are dropped (Binance's sync rule).
    From then on the book equals Binance's after every depth message. Depth comes in
    batches (futures `depth@0ms` every ~50 ms, spot every 100 ms) while bookTicker and trades
    are real time, so between batches the recorded `TopOfBook` runs ahead of the book.
    The few spot quantities finer than the lot are rounded to the nearest lot.

    No market impact: `on_taken` does nothing, because the next recorded update of a level
    sets its quantity absolutely, restoring whatever our orders took.
    """

    def __init__(
        self,
        files: Mapping[str, Path],
        instruments: Sequence[Instrument],
        *,
        start_ns: int,
        speed: float = 1.0,
        cached: bool = True,
    ) -> None:
        by_symbol = {i.symbol: i for i in instruments}
        missing = sorted(set(files) - set(by_symbol))
        if missing:
            raise ValueError(f"files for {missing} have no instrument; got {sorted(by_symbol)}")
        if not files:
            raise ValueError("ReplayMarket needs at least one file")
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._files = {s: Path(p) for s, p in files.items()}
        self._by_symbol = {s: by_symbol[s] for s in self._files}
        self.start_ns = start_ns
        self.speed = speed
        self.cached = cached
        self.first_recv_ns = min(_first_recv_ns(p) for p in self._files.values())
        self._cursors: list[_Cursor] | None = None
        self._merged: Iterator[ReplayRecord] | None = None  # several files: their records
        self._next: ReplayRecord | None = None  # and the next of them
        self._tops: dict[str, TopOfBook] = {}

    @classmethod
    def from_dir(
        cls,
        directory: Path,
        kind: Literal["usdm", "spot"],
        start_ns: int,
        symbols: Sequence[str] | None = None,
        speed: float = 1.0,
        cached: bool = True,
    ) -> ReplayMarket:
        """The recordings `<kind>_<symbol>_*.gz` in `directory`, with `REPLAY_INSTRUMENTS`."""
        if kind not in REPLAY_INSTRUMENTS:
            raise ValueError(f"kind must be one of {sorted(REPLAY_INSTRUMENTS)}, got {kind!r}")
        known = REPLAY_INSTRUMENTS[kind]
        files = {
            p.name.split("_")[1].upper(): p for p in sorted(Path(directory).glob(f"{kind}_*.gz"))
        }
        wanted = list(files) if symbols is None else list(symbols)
        for s in wanted:
            if s not in files or s not in known:
                raise ValueError(
                    f"symbol {s!r}: no {kind} recording with a known instrument in {directory}; "
                    f"have {sorted(set(files) & set(known))}"
                )
        return cls(
            {s: files[s] for s in wanted},
            [known[s] for s in wanted],
            start_ns=start_ns,
            speed=speed,
            cached=cached,
        )

    # --- span ------------------------------------------------------------------------
    @property
    def first_ns(self) -> int:
        """Simulated time of the first recorded line."""
        return self.start_ns

    @cached_property
    def duration_ns(self) -> int:
        """Recorded span, first line to last over all files (one pass over each file, once
        per process while it is unchanged)."""
        return max(_last_recv_ns(p) for p in self._files.values()) - self.first_recv_ns

    @property
    def last_ns(self) -> int:
        """Simulated time of the last recorded line."""
        return self.start_ns + int(self.duration_ns / self.speed)

    # --- MarketSource ----------------------------------------------------------------
    def instruments(self) -> list[Instrument]:
        return list(self._by_symbol.values())

    def updates(self, until_ns: int) -> Iterator[MarketUpdate]:
        """Every update after the previous call's `until_ns`, up to and including this one."""
        if self._cursors is None:
            self._cursors = [self._cursor(s, p) for s, p in self._files.items()]
        cursors, tops = self._cursors, self._tops
        if len(cursors) > 1:
            if self._merged is None:
                self._merged = _merge(cursors)
                self._next = next(self._merged, None)
            while (rec := self._next) is not None and rec.ts_ns <= until_ns:
                # Advance before yielding, so a consumer that stops early loses nothing.
                self._next = next(self._merged, None)
                if type(rec.update) is TopOfBook:
                    tops[rec.update.symbol] = rec.update
                yield rec.update
            return
        # One file, the usual case: the cursor's columns read in place, chunk by chunk.
        c = cursors[0]
        symbol = c.symbol
        while c.i < c.n or c.load():
            times, kinds, a, b, d, e, levels = c.ts, c.kind, c.a, c.b, c.c, c.d, c.levels
            for i in range(c.i, c.n):
                ts = times[i]
                if ts > until_ns:
                    return
                # Advance before yielding, so a consumer that stops early loses nothing.
                c.i = i + 1
                kind = kinds[i]
                if kind == _DEPTH:
                    lo, mid, hi = a[i], b[i], d[i]
                    yield DepthUpdate(ts, symbol, levels[lo:mid], levels[mid:hi])
                elif kind == _TICKER:
                    top = tops[symbol] = TopOfBook(ts, symbol, a[i], b[i], d[i], e[i])
                    yield top
                else:
                    yield TradePrint(ts, symbol, _SIDES[a[i]], b[i], d[i])

    def next_ns(self) -> int | None:
        """When the next depth update or trade plays (None: at the end of every file). The
        bookTickers before it can wait: they change no book, and `fair_price` is read after
        an `updates` call."""
        if self._cursors is None:
            self._cursors = [self._cursor(s, p) for s, p in self._files.items()]
        if len(self._cursors) == 1:
            c = self._cursors[0]
            return c.next_ns() if c.i < c.n or c.load() else None
        if self._merged is None:  # several files: the next record, whatever its kind
            return self.first_ns
        return None if self._next is None else self._next.ts_ns

    def on_taken(self, symbol: str, side: Side, price: int, qty: int, now_ns: int) -> None:
        """Nothing: the recorded levels restore what we take at their next update."""

    def fair_price(self, symbol: str, now_ns: int) -> float | None:
        """Mid of the last recorded bookTicker that `updates` yielded, as a price."""
        top = self._tops.get(symbol)
        if top is None:
            return None
        return (top.bid + top.ask) / 2 * float(self._by_symbol[symbol].tick)

    # --- records ---------------------------------------------------------------------
    def records(self) -> Iterator[ReplayRecord]:
        """Every record with its update ids, from the start (independent of `updates`)."""
        return _merge([self._cursor(s, p) for s, p in self._files.items()])

    def _cursor(self, symbol: str, path: Path) -> _Cursor:
        inst = self._by_symbol[symbol]
        chunks = _chunks(path, float(1 / inst.tick), float(1 / inst.lot), self.cached)
        return _Cursor(symbol, chunks, self.start_ns, self.first_recv_ns, self.speed)


_SIDES = (Side.BUY, Side.SELL)  # a trade's taker side in a decoded chunk: 1 if it sold


class _Cursor:
    """One file's place in its replay: the decoded chunk it reads, and the next record."""

    def __init__(
        self, symbol: str, chunks: Iterator[_Chunk], start: int, t0: int, speed: float
    ) -> None:
        self.symbol = symbol
        self._chunks = chunks
        self._start, self._t0, self._speed = start, t0, speed
        self.i = self.n = 0
        self.j = 0  # no depth update or trade in the chunk before this index, from `i` on
        self.ts: list[int] = []
        empty = array("q")
        self.kind, self.first_id, self.last_id = array("b"), empty, empty
        self.a = self.b = self.c = self.d = empty
        self.levels: list[tuple[int, int]] = []

    def load(self) -> bool:
        """Move to the next chunk; False at the end of the file."""
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        # Recorded time `t` plays at start + (t - t0) / speed, as Python ints.
        rel = (chunk.recv - self._t0) / self._speed
        self.ts = (self._start + rel.astype(np.int64)).tolist()
        self.kind, self.first_id, self.last_id = chunk.kind, chunk.first_id, chunk.last_id
        self.a, self.b, self.c, self.d = chunk.values
        # Every level of the chunk as a (price, qty) pair at once: an update's are a slice.
        self.levels = list(zip(chunk.prices, chunk.qtys, strict=True))
        self.i, self.n, self.j = 0, len(self.ts), 0
        return self.n > 0 or self.load()

    def next_ns(self) -> int:
        """When the chunk's next depth update or trade plays, else its last record: a time
        before which only bookTickers come. The chunk must have a record left."""
        j, n, kind = max(self.i, self.j), self.n, self.kind
        while j < n and kind[j] == _TICKER:
            j += 1
        self.j = j
        return self.ts[j] if j < n else self.ts[n - 1]

    def records(self) -> Iterator[ReplayRecord]:
        """The records from here to the end of the file."""
        symbol = self.symbol
        while self.i < self.n or self.load():
            times, kinds, levels = self.ts, self.kind, self.levels
            a, b, c, d = self.a, self.b, self.c, self.d
            firsts, lasts = self.first_id, self.last_id
            for i in range(self.i, self.n):
                self.i = i + 1
                ts, kind = times[i], kinds[i]
                update: MarketUpdate
                if kind == _DEPTH:
                    update = DepthUpdate(ts, symbol, levels[a[i] : b[i]], levels[b[i] : c[i]])
                elif kind == _TICKER:
                    update = TopOfBook(ts, symbol, a[i], b[i], c[i], d[i])
                else:
                    update = TradePrint(ts, symbol, _SIDES[a[i]], b[i], c[i])
                yield ReplayRecord(ts, update, firsts[i], lasts[i])


def _merge(cursors: list[_Cursor]) -> Iterator[ReplayRecord]:
    """The files' records in time order; a tie goes to the file listed first."""
    if len(cursors) == 1:
        return cursors[0].records()
    return heapq.merge(*(c.records() for c in cursors), key=itemgetter(0))


# --- decoding ------------------------------------------------------------------------
_CHUNK_BYTES = 1 << 20  # lines decoded at a time: ~12 s of a BTC perp recording
_CACHE_FILES = 8  # recordings kept decoded in the process, most recently used
_CACHE_MAX_FILE_BYTES = 64 << 20  # bigger recordings are decoded as they play, and not kept


class _Chunk(NamedTuple):
    """One stretch of a recording decoded into columns (compact: a tenth of the memory of
    Python objects, and read in place by every replay).

    Per record: receive time, kind, Binance's first and last update ids, and four values:
    depth: where its bids start, where its asks start, where they end in `prices`/`qtys`;
    ticker: bid, bid qty, ask, ask qty; trade: 1 if the taker sold, price, qty, 0.
    """

    recv: np.ndarray
    kind: array[int]
    first_id: array[int]
    last_id: array[int]
    values: tuple[array[int], array[int], array[int], array[int]]
    prices: array[int]
    qtys: array[int]


class _Decoder:
    """Decodes one recording's lines into `_Chunk`s, in order, in ticks and lots.

    The book: depth diffs before the file's snapshot are kept as they come (and remembered
    with the `u` that last set each level); the snapshot becomes one update that keeps the
    levels a newer diff set and deletes older ones it lacks; diffs older than the snapshot
    that arrive after it are dropped. Insurance-fund and ADL trade prints are dropped too.
    """

    def __init__(self, path: Path, px: float, lot: float) -> None:
        self.path, self.px, self.lot = path, px, lot
        self.line = 0
        self.prev = -1
        # Levels set by diffs before the snapshot, with the `u` that set them last.
        self.seen: tuple[dict[int, int], dict[int, int]] | None = ({}, {})
        self.synced = -1  # diffs with `u` at or below this are older than the book
        self.kinds: dict[bytes, int] = {}
        # Each kind's four numbers to units: offsets stay, prices to ticks, quantities to lots.
        self.scales = np.array([[1, 1, 1, 1], [px, lot, px, lot], [1, px, lot, 1]])

    def chunks(self) -> Iterator[_Chunk]:
        with _open(self.path) as f:
            while lines := f.readlines(_CHUNK_BYTES):
                yield self.decode(lines)

    def _where(self, n: int) -> str:
        return f"{self.path}:{n}"

    def _kind(self, name: bytes, n: int) -> int:
        kind = self.kinds.get(name)
        if kind is None:
            parts = name.split(b"@")
            kind = _KINDS.get(parts[1]) if len(parts) > 1 else None
            if kind is None:
                raise ValueError(f"{self._where(n)}: unknown stream {name.decode()}")
            self.kinds[name] = kind
        return kind

    def decode(self, lines: list[bytes]) -> _Chunk:
        """The next lines of the file, in its order."""
        first = self.line + 1
        self.line += len(lines)
        messages = self._bulk(lines) if self.seen is None else None
        if messages is None:
            messages = self._each(lines, first)
        recv: list[int] = []
        kinds: list[int] = []
        ids: list[tuple[int, int]] = []
        # Per record, four numbers scaled at the end by its kind's row of `scales`, all at once:
        # depth: level offsets; ticker: bid, bid qty, ask, ask qty; trade: side, price, qty.
        raw: list[tuple[float, float, float, float]] = []
        flat: list[tuple[float, float]] = []  # depth levels, bids then asks of each diff
        extra: list[tuple[int, int]] = []  # the snapshot's levels, in units already
        snapshot_row = -1
        synced, seen = self.synced, self.seen
        for r, kind, msg in messages:
            if kind == _DEPTH:
                if msg.last_id <= synced:
                    continue
                if seen is not None:
                    seen[0].update((p, msg.last_id) for p, _ in self._levels(msg.bids))
                    seen[1].update((p, msg.last_id) for p, _ in self._levels(msg.asks))
                lo = len(flat)
                flat += msg.bids
                mid = len(flat)
                flat += msg.asks
                ids.append((msg.first_id, msg.last_id))
                raw.append((lo, mid, len(flat), 0))
            elif kind == _TICKER:
                ids.append((msg.update_id, msg.update_id))
                raw.append((msg.bid, msg.bid_qty, msg.ask, msg.ask_qty))
            elif kind == _TRADE:
                if msg.kind != "MARKET":
                    continue  # insurance-fund and ADL prints never crossed the book
                ids.append((msg.trade_id, msg.trade_id))
                # `m`: the buyer was the maker, so the seller took liquidity.
                raw.append((msg.buyer_is_maker, msg.price, msg.qty, 0))
            else:  # the snapshot
                assert seen is not None  # `_each` refuses a second one
                bids = _merge_snapshot(self._levels(msg.bids), seen[0], msg.last_id)
                asks = _merge_snapshot(self._levels(msg.asks), seen[1], msg.last_id)
                synced = max(msg.last_id, *seen[0].values(), *seen[1].values())
                seen = None
                # Offsets into `extra` for now; moved past `flat` once its length is known.
                lo = len(extra)
                extra += bids
                extra += asks
                snapshot_row = len(raw)
                # first_id 0: a snapshot is the sum of every update up to its id.
                ids.append((0, synced))
                raw.append((lo, lo + len(bids), len(extra), 0))
            recv.append(r)
            kinds.append(_DEPTH if kind < 0 else kind)
        self.synced, self.seen = synced, seen
        kind_col = np.array(kinds, dtype=np.int8)
        values = np.rint(_floats(raw, 4) * self.scales[kind_col]).astype(np.int64)
        if snapshot_row >= 0:
            values[snapshot_row, :3] += len(flat)
        levels = np.rint(_floats(flat, 2) * [self.px, self.lot]).astype(np.int64)
        id_col = np.array(ids, dtype=np.int64).reshape(-1, 2)
        extra_col = np.array(extra, dtype=np.int64).reshape(-1, 2)
        return _Chunk(
            recv=np.array(recv, dtype=np.int64),
            kind=_column(kind_col, "b"),
            first_id=_column(id_col[:, 0]),
            last_id=_column(id_col[:, 1]),
            values=(
                _column(values[:, 0]),
                _column(values[:, 1]),
                _column(values[:, 2]),
                _column(values[:, 3]),
            ),
            prices=_column(np.concatenate([levels[:, 0], extra_col[:, 0]])),
            qtys=_column(np.concatenate([levels[:, 1], extra_col[:, 1]])),
        )

    def _bulk(self, lines: list[bytes]) -> list[tuple[int, int, Any]] | None:
        """(receive time, kind, message) of every line, read in bulk: the chunk rewritten
        into one JSON array (`<t> {"stream":...}` lines become `[t,{"stream":...}]`) for one
        decoder call. None when the lines need reading one by one: not all in Binance's
        compact form, a stream not met yet, or a line that is wrong (`_each` names it)."""
        text = b"".join(lines).rstrip(b"\n")
        if not self.kinds or text.count(_COMPACT) != len(lines):
            return None
        doc = b"[[" + text.replace(b"\n", b"],[").replace(_COMPACT, b',{"stream":') + b"]]"
        try:
            items = _bulk_decoder(frozenset(self.kinds.items())).decode(doc)
        except msgspec.DecodeError:
            return None
        times = [r for r, _ in items]
        if len(times) != len(lines) or not all(map(operator.le, [self.prev, *times], times)):
            return None
        self.prev = times[-1]
        return [(r, m.kind, m.data) for r, m in items]

    def _each(self, lines: list[bytes], first: int) -> Iterator[tuple[int, int, Any]]:
        """(receive time, kind, message) of each line in turn (-1: the snapshot)."""
        snapshot = self.seen is None
        for n, line in enumerate(lines, first):
            cut = line.index(b" ")
            r = int(line[:cut])
            if r < self.prev:
                raise ValueError(f"{self._where(n)}: receive time goes back ({r} < {self.prev})")
            self.prev = r
            body = memoryview(line)[cut + 1 :]
            if line.startswith(_STREAM, cut + 1):  # Binance's compact JSON: name right here
                at = cut + 1 + len(_STREAM)
                name: bytes | None = line[at : line.index(b'"', at)]
            else:  # any other spacing, or the snapshot: read the envelope alone
                stream = _ENVELOPE.decode(body).stream
                name = None if stream is None else stream.encode()
            if name is None:
                if snapshot:
                    raise ValueError(f"{self._where(n)}: a second depth snapshot")
                snapshot = True
                yield r, -1, _SNAPSHOT.decode(body)
                continue
            kind = self._kind(name, n)
            try:
                msg = _DECODERS[kind].decode(body).data
            except msgspec.DecodeError as e:
                raise ValueError(f"{self._where(n)}: {e}") from None
            yield r, kind, msg

    def _levels(self, levels: Levels) -> list[tuple[int, int]]:
        px, lot = self.px, self.lot
        return [(round(p * px), round(q * lot)) for p, q in levels]


def _column(values: np.ndarray, code: str = "q") -> array[int]:
    """A numpy column as an `array`: indexed and sliced in Python with no numpy scalars."""
    out = array(code)
    out.frombytes(values.astype(np.int8 if code == "b" else np.int64).tobytes())
    return out


@functools.lru_cache(maxsize=32)
def _bulk_decoder(streams: frozenset[tuple[bytes, int]]) -> msgspec.json.Decoder:
    """A decoder of `[[receive ns, message], ...]` for these streams (name, kind): a union of
    structs, each tagged with its stream's name and carrying its kind."""
    members = tuple(
        msgspec.defstruct(
            f"_Tagged{kind}",
            [("data", _TYPES[kind])],
            namespace={"kind": kind},
            tag_field="stream",
            tag=name.decode(),
            frozen=True,
            gc=False,
        )
        for name, kind in sorted(streams)
    )
    return msgspec.json.Decoder(list[tuple[int, Union[members]]], strict=False)  # noqa: UP007


def _floats(rows: list, width: int) -> np.ndarray:
    """Rows of `width` numbers as a float array (fromiter takes a third of np.array's time)."""
    values = itertools.chain.from_iterable(rows)
    return np.fromiter(values, dtype=np.float64, count=len(rows) * width).reshape(-1, width)


class _Recording:
    """One recording decoded in one instrument's units, shared by every replay of it in the
    process: decoded chunk by chunk as the furthest reader needs, and kept."""

    def __init__(self, path: Path, px: float, lot: float) -> None:
        self._source: Iterator[_Chunk] | None = _Decoder(path, px, lot).chunks()
        self._chunks: list[_Chunk] = []
        self._lock = threading.Lock()

    def chunk(self, i: int) -> _Chunk | None:
        with self._lock:
            while i >= len(self._chunks) and self._source is not None:
                c = next(self._source, None)
                if c is None:
                    self._source = None
                else:
                    self._chunks.append(c)
            return self._chunks[i] if i < len(self._chunks) else None


_RECORDINGS: OrderedDict[tuple[object, ...], _Recording] = OrderedDict()
_RECORDINGS_LOCK = threading.Lock()


def _chunks(path: Path, px: float, lot: float, cached: bool) -> Iterator[_Chunk]:
    """The recording's chunks: decoded once per process (while the file is unchanged), or,
    uncached or too big to keep, decoded from the file as they are read."""
    identity = _identity(path)
    if not cached or identity[2] > _CACHE_MAX_FILE_BYTES:
        yield from _Decoder(path, px, lot).chunks()
        return
    key = (*identity, px, lot)
    with _RECORDINGS_LOCK:
        rec = _RECORDINGS.get(key)
        if rec is None:
            rec = _RECORDINGS[key] = _Recording(path, px, lot)
            while len(_RECORDINGS) > _CACHE_FILES:
                _RECORDINGS.popitem(last=False)
        _RECORDINGS.move_to_end(key)
    i = 0
    while (c := rec.chunk(i)) is not None:
        yield c
        i += 1


def _merge_snapshot(
    snapshot: list[tuple[int, int]], seen: dict[int, int], last_id: int
) -> list[tuple[int, int]]:
    """Snapshot levels unless a newer diff set them; deletes for older levels it lacks."""
    listed = {p for p, _ in snapshot}
    keep = [(p, q) for p, q in snapshot if seen.get(p, -1) <= last_id]
    return keep + [(p, 0) for p, u in seen.items() if u <= last_id and p not in listed]


def _open(path: Path) -> io.BufferedReader:
    # A big buffer over the raw gzip stream: C-level line splitting, twice as fast.
    return io.BufferedReader(gzip.GzipFile(path), 1 << 20)  # type: ignore[arg-type]


def _first_recv_ns(path: Path) -> int:
    return _first_recv_of(*_identity(path))


def _last_recv_ns(path: Path) -> int:
    return _last_recv_of(*_identity(path))


def _identity(path: Path) -> tuple[str, int, int]:
    """What keys a file's cached figures: its path, modification time and size."""
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=64)
def _first_recv_of(path: str, mtime_ns: int, size: int) -> int:
    with gzip.open(path) as f:
        return int(f.readline().split(b" ", 1)[0])


@functools.lru_cache(maxsize=64)
def _last_recv_of(path: str, mtime_ns: int, size: int) -> int:
    # Decompressed block by block, keeping only the last line so far: no other line is made.
    inflate, tail = zlib.decompressobj(wbits=31), b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            tail = _last_line(tail + inflate.decompress(block))
            while inflate.eof and inflate.unused_data:  # a file of several gzip members
                rest = inflate.unused_data
                inflate = zlib.decompressobj(wbits=31)
                tail = _last_line(tail + inflate.decompress(rest))
    return int(tail.split(b" ", 1)[0])


def _last_line(data: bytes) -> bytes:
    """`data` from the start of its last line (a final newline aside)."""
    return data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
