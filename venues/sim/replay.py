"""Replay of recorded Binance depth, bookTicker and trade streams as a market source."""

from __future__ import annotations

import gzip
import heapq
import io
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Generic, Literal, NamedTuple, TypeVar

import msgspec

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
_DECODERS = {
    b"depth": msgspec.json.Decoder(_Msg[_Depth], strict=False),
    b"bookTicker": msgspec.json.Decoder(_Msg[_Ticker], strict=False),
    b"trade": msgspec.json.Decoder(_Msg[_Trade], strict=False),
}
_SNAPSHOT = msgspec.json.Decoder(_Snapshot, strict=False)
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
    line over all files, so symbols stay aligned. Files are decoded lazily as `updates` goes
    (a few MB, against ~140 MB to hold the two perps decoded).

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
        self.first_recv_ns = min(_first_recv_ns(p) for p in self._files.values())
        self._records: Iterator[ReplayRecord] | None = None
        self._next: ReplayRecord | None = None
        self._tops: dict[str, TopOfBook] = {}

    @classmethod
    def from_dir(
        cls,
        directory: Path,
        kind: Literal["usdm", "spot"],
        start_ns: int,
        symbols: Sequence[str] | None = None,
        speed: float = 1.0,
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
        )

    # --- span ------------------------------------------------------------------------
    @property
    def first_ns(self) -> int:
        """Simulated time of the first recorded line."""
        return self.start_ns

    @cached_property
    def duration_ns(self) -> int:
        """Recorded span, first line to last over all files (one pass over them on first use)."""
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
        if self._records is None:
            self._records = self.records()
            self._next = next(self._records, None)
        while (rec := self._next) is not None and rec.ts_ns <= until_ns:
            # Advance before yielding, so a consumer that stops early loses nothing.
            self._next = next(self._records, None)
            if type(rec.update) is TopOfBook:
                self._tops[rec.update.symbol] = rec.update
            yield rec.update

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
        streams = [self._read(s, p) for s, p in self._files.items()]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=itemgetter(0))

    def _read(self, symbol: str, path: Path) -> Iterator[ReplayRecord]:
        inst = self._by_symbol[symbol]
        px, lot = float(1 / inst.tick), float(1 / inst.lot)

        def units(levels: Levels) -> list[tuple[int, int]]:
            return [(round(p * px), round(q * lot)) for p, q in levels]

        # Levels set by diffs before the snapshot, with the `u` that set them last.
        seen: tuple[dict[int, int], dict[int, int]] | None = ({}, {})
        synced = -1  # diffs with `u` at or below this are older than the book
        decoders: dict[bytes, msgspec.json.Decoder] = {}
        start, t0, speed, prev = self.start_ns, self.first_recv_ns, self.speed, -1
        with _open(path) as lines:
            for n, line in enumerate(lines, 1):
                cut = line.index(b" ")
                recv = int(line[:cut])
                if recv < prev:
                    raise ValueError(f"{path}:{n}: receive time goes back ({recv} < {prev})")
                prev = recv
                ts = start + int((recv - t0) / speed)
                body = memoryview(line)[cut + 1 :]
                at = cut + 1 + len(_STREAM)
                if line.startswith(_STREAM, cut + 1):  # Binance's compact JSON: name right here
                    name = line[at : line.index(b'"', at)]
                else:  # any other spacing, or the snapshot: read the envelope alone
                    stream = _ENVELOPE.decode(body).stream
                    name = None if stream is None else stream.encode()
                if name is None:
                    snap = _SNAPSHOT.decode(body)
                    if seen is None:
                        raise ValueError(f"{path}:{n}: a second depth snapshot")
                    bids = _merge_snapshot(units(snap.bids), seen[0], snap.last_id)
                    asks = _merge_snapshot(units(snap.asks), seen[1], snap.last_id)
                    synced = max(snap.last_id, *seen[0].values(), *seen[1].values())
                    seen = None
                    # first_id 0: a snapshot is the sum of every update up to its id.
                    yield ReplayRecord(ts, DepthUpdate(ts, symbol, bids, asks), 0, synced)
                    continue
                if (decoder := decoders.get(name)) is None:
                    decoder = decoders[name] = _DECODERS.get(name.split(b"@")[1])
                    if decoder is None:
                        raise ValueError(f"{path}:{n}: unknown stream {name.decode()}")
                msg = decoder.decode(body).data
                match msg:
                    case _Depth(first_id=first, last_id=last):
                        if last <= synced:
                            continue
                        bids, asks = units(msg.bids), units(msg.asks)
                        if seen is not None:
                            seen[0].update((p, last) for p, _ in bids)
                            seen[1].update((p, last) for p, _ in asks)
                        yield ReplayRecord(ts, DepthUpdate(ts, symbol, bids, asks), first, last)
                    case _Ticker(update_id=uid):
                        top = TopOfBook(
                            ts,
                            symbol,
                            round(msg.bid * px),
                            round(msg.bid_qty * lot),
                            round(msg.ask * px),
                            round(msg.ask_qty * lot),
                        )
                        yield ReplayRecord(ts, top, uid, uid)
                    case _Trade(trade_id=tid, kind="MARKET"):
                        # `m`: the buyer was the maker, so the seller took liquidity.
                        side = Side.SELL if msg.buyer_is_maker else Side.BUY
                        trade = TradePrint(
                            ts, symbol, side, round(msg.price * px), round(msg.qty * lot)
                        )
                        yield ReplayRecord(ts, trade, tid, tid)
                    case _Trade():
                        pass  # insurance-fund and ADL prints never crossed the book


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
    with _open(path) as f:
        return int(f.readline().split(b" ", 1)[0])


def _last_recv_ns(path: Path) -> int:
    last = b""
    with _open(path) as f:
        for last in f:  # noqa: B007 - only the final line is wanted
            pass
    return int(last.split(b" ", 1)[0])
