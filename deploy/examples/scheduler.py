#!/usr/bin/python3
"""A small fieldsync reminder scheduler, written against docs/protocol.md alone.

It subscribes to the daemon's reminder PUB (docs/protocol.md §6), first replays
every stored event after --since over the sync endpoint, then follows the PUB,
fills gaps in ``seq`` by replay and drops duplicates. Each event is printed
once, in ``seq`` order:

    seq state rule reminder_id scope case_id due_at_ms

or, with --json, as one JSON object per line.

Run it with Debian's interpreter, which has the two modules it needs
(packages python3-zmq and python3-protobuf):

    deploy/examples/gen-proto.sh build/python
    /usr/bin/python3 deploy/examples/scheduler.py --proto-out build/python \\
        --endpoint tcp://127.0.0.1:7400 --reminders tcp://127.0.0.1:7401

The protobuf code is generated, never committed: --proto-out (or
$FIELDSYNC_PROTO_OUT) names the directory that
``protoc --python_out=DIR -I proto proto/fieldsync/v1/sync.proto`` wrote.

--verbose reports gaps on stderr and, at exit, how many events came by
replay and how many from the PUB.

Exit status: 0 after --count events, after --idle-exit seconds without a new
event, or at end of output; 1 on an error the daemon will not recover from;
2 on a usage error; 130 on Ctrl-C and 143 on SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import Any, NoReturn

import zmq

PAGE = 1000            # events asked for per ReplayRequest (a page may hold fewer)
IDLE_CHECK_S = 2.0     # a quiet PUB: check replay this often
REPLY_TIMEOUT_S = 5.0  # no reply: ask again (replay is idempotent)
RETRY_DEFAULT_MS = 1000


class Done(Exception):
    """The run is over; exit with `status`."""

    def __init__(self, status: int = 0) -> None:
        super().__init__(status)
        self.status = status


class Fatal(Exception):
    """The daemon answered something this scheduler cannot recover from."""


def load_proto(proto_out: str) -> ModuleType:
    """Imports fieldsync/v1/sync_pb2.py from the directory protoc wrote."""
    path = os.path.join(proto_out, "fieldsync", "v1", "sync_pb2.py")
    if not os.path.isfile(path):
        sys.exit(
            f"scheduler: {path} not found; generate it with\n"
            f"  protoc --python_out={proto_out} -I proto proto/fieldsync/v1/sync.proto\n"
            "(Debian package protobuf-compiler) or deploy/examples/gen-proto.sh"
        )
    sys.path.insert(0, os.path.abspath(proto_out))
    return importlib.import_module("fieldsync.v1.sync_pb2")


class Scheduler:
    """Delivers every reminder event after a cursor once, in seq order."""

    def __init__(self, pb: ModuleType, args: argparse.Namespace) -> None:
        self.pb = pb
        self.args = args
        self.cursor: int = args.since      # every seq <= cursor is handled
        self.printed = 0
        self.request_id = 0
        self.stats = {"replay": 0, "pub": 0, "gaps": 0, "requests": 0}
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, args.prefix.encode())
        self.sub.connect(args.reminders)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(args.endpoint)
        now = time.monotonic()
        self.last_new = now    # for --idle-exit
        self.last_check = now  # for the 2 s replay check

    def close(self) -> None:
        self.sub.close(0)
        self.dealer.close(0)
        self.ctx.term()

    # -- the sync endpoint -------------------------------------------------

    def call(self, build: Callable[[Any], None]) -> Any:
        """Sends one Envelope (build fills its body) and returns the reply
        with the same request_id. Retries BUSY/UNAVAILABLE after
        retry_after_ms and a lost reply after REPLY_TIMEOUT_S; raises Fatal
        on any other Error."""
        while True:
            self.check_idle()
            self.request_id += 1
            env = self.pb.Envelope(request_id=self.request_id)
            build(env)
            self.dealer.send(env.SerializeToString())
            self.stats["requests"] += 1
            reply = self.await_reply(self.request_id)
            if reply is None:
                warn(f"no reply within {REPLY_TIMEOUT_S:g} s; asking again")
                continue
            if reply.WhichOneof("body") != "error":
                return reply
            err = reply.error
            code = enum_name(self.pb.Error.Code, err.code)
            if err.code in (self.pb.Error.BUSY, self.pb.Error.UNAVAILABLE):
                wait_ms = err.retry_after_ms or RETRY_DEFAULT_MS
                warn(f"daemon: {code}: {err.message}; retrying in {wait_ms} ms")
                time.sleep(min(wait_ms / 1000, max(0.0, self.idle_deadline() - time.monotonic())))
                continue
            raise Fatal(f"daemon: {code}: {err.message}")

    def await_reply(self, request_id: int) -> Any | None:
        """The reply to request_id, or None after REPLY_TIMEOUT_S. Replies to
        earlier, abandoned requests are dropped."""
        deadline = min(time.monotonic() + REPLY_TIMEOUT_S, self.idle_deadline())
        while (left := deadline - time.monotonic()) > 0:
            if not self.dealer.poll(int(left * 1000) + 1, zmq.POLLIN):
                break
            frames = self.dealer.recv_multipart()
            reply = self.pb.Envelope()
            try:
                if len(frames) != 1:
                    raise ValueError(f"{len(frames)} frames")
                reply.ParseFromString(frames[0])
            except Exception as e:  # DecodeError, or the frame count
                warn(f"dropped a malformed reply ({e})")
                continue
            if reply.request_id == request_id:
                return reply
        self.check_idle()
        return None

    def catch_up(self) -> None:
        """Replays every stored event after the cursor, page by page, until
        the daemon says there is no more."""
        def ask(env: Any) -> None:
            env.replay.since_seq = self.cursor
            env.replay.limit = PAGE

        while True:
            since = self.cursor
            reply = self.call(ask)
            if reply.WhichOneof("body") != "replay_reply":
                raise Fatal(f"expected a ReplayReply, got {reply.WhichOneof('body')}")
            page = reply.replay_reply
            for ev in page.events:
                self.deliver(ev, topic=None)
            # The next page starts after last_seq, which may lie past the last
            # event returned (events this peer may not see), never before it.
            self.cursor = max(self.cursor, page.last_seq)
            self.last_check = time.monotonic()
            if not page.more:
                return
            if self.cursor <= since:
                raise Fatal(f"replay after {since} made no progress but says more")

    # -- events ------------------------------------------------------------

    def deliver(self, ev: Any, topic: str | None) -> None:
        """Prints ev if it is the next one; drops duplicates (seq <= cursor)."""
        if ev.seq <= self.cursor:
            return
        if ev.seq != self.cursor + 1:
            warn(f"seq {self.cursor + 1}..{ev.seq - 1} missing from the replay")
        self.cursor = ev.seq
        self.last_new = time.monotonic()
        self.stats["replay" if topic is None else "pub"] += 1
        if topic is None:  # from replay: apply the SUB prefix ourselves
            topic = f"reminder/{ev.rule}/{ev.scope}"
        if not topic.startswith(self.args.prefix):
            return
        self.emit(ev)
        self.printed += 1
        if self.args.count is not None and self.printed >= self.args.count:
            raise Done(0)

    def emit(self, ev: Any) -> None:
        state = enum_name(self.pb.ReminderEvent.State, ev.state)
        if self.args.json:
            line = json.dumps({
                "seq": ev.seq, "state": state, "rule": ev.rule,
                "reminder_id": ev.reminder_id, "scope": ev.scope,
                "case_id": ev.case_id, "contact_person": ev.contact_person,
                "due_at_ms": ev.due_at_ms, "emitted_at_ms": ev.emitted_at_ms,
            }, separators=(",", ":"))
        else:
            fields = (ev.seq, state, ev.rule, ev.reminder_id, ev.scope, ev.case_id, ev.due_at_ms)
            line = " ".join(str(f) if f != "" else "-" for f in fields)  # "-": empty
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def on_pub(self) -> None:
        """Handles one PUB message: two frames, topic and ReminderEvent."""
        frames = self.sub.recv_multipart()
        self.last_check = time.monotonic()
        if len(frames) != 2:
            warn(f"dropped a PUB message of {len(frames)} frames")
            return
        ev = self.pb.ReminderEvent()
        try:
            ev.ParseFromString(frames[1])
            topic = frames[0].decode()
        except Exception as e:
            warn(f"dropped a malformed event ({e})")
            return
        if ev.seq > self.cursor + 1:  # a gap: everything before ev is stored
            self.stats["gaps"] += 1
            if self.args.verbose:
                warn(f"gap: PUB jumped from {self.cursor} to {ev.seq}; replaying")
            self.catch_up()
        self.deliver(ev, topic)

    # -- the loop ----------------------------------------------------------

    def idle_deadline(self) -> float:
        """When --idle-exit ends the run (monotonic seconds; inf without it)."""
        if self.args.idle_exit is None:
            return float("inf")
        return self.last_new + self.args.idle_exit

    def check_idle(self) -> None:
        """Raises Done once --idle-exit seconds passed without a new event,
        also while the daemon does not answer."""
        if time.monotonic() >= self.idle_deadline():
            raise Done(0)

    def run(self) -> None:
        # The SUB is connected first, so nothing published during the
        # initial replay is lost: it arrives later as a duplicate or a gap.
        self.catch_up()
        while True:
            self.check_idle()
            now = time.monotonic()
            wait = min(self.last_check + IDLE_CHECK_S, self.idle_deadline()) - now
            if self.sub.poll(max(0, int(wait * 1000)) + 1, zmq.POLLIN):
                self.on_pub()
            elif time.monotonic() >= self.last_check + IDLE_CHECK_S:
                self.catch_up()  # a tail the PUB never delivered


def enum_name(enum: Any, value: int) -> str:
    """The enum value's name; the number for a value newer than this code."""
    return enum.Name(value) if value in enum.values() else str(value)


def warn(msg: str) -> None:
    print(f"scheduler: {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Follow fieldsync reminders: replay, then PUB, gaps filled by replay.")
    p.add_argument("--endpoint", required=True, help="the sync endpoint, e.g. tcp://HOST:7400")
    p.add_argument("--reminders", required=True, help="the reminder PUB, e.g. tcp://HOST:7401")
    p.add_argument("--since", type=nonneg_int, default=0, metavar="SEQ",
                   help="print events after SEQ (default 0: all stored)")
    p.add_argument("--prefix", default="reminder/",
                   help="topic prefix, e.g. reminder/quick-help/ (default reminder/)")
    p.add_argument("--count", type=pos_int, metavar="N", help="exit after N events")
    p.add_argument("--idle-exit", type=float, metavar="SECONDS",
                   help="exit after SECONDS without a new event")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.add_argument("--verbose", action="store_true",
                   help="report gaps and, at exit, where the events came from (stderr)")
    p.add_argument("--proto-out", metavar="DIR", default=os.environ.get("FIELDSYNC_PROTO_OUT"),
                   help="where protoc wrote fieldsync/v1/sync_pb2.py ($FIELDSYNC_PROTO_OUT)")
    args = p.parse_args(argv)
    if args.proto_out is None:
        p.error("--proto-out DIR (or FIELDSYNC_PROTO_OUT) is required")
    if not args.prefix.startswith("reminder/"):
        p.error("--prefix must start with reminder/")
    if args.idle_exit is not None and not args.idle_exit > 0:
        p.error("--idle-exit must be > 0")
    return args


def nonneg_int(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seq (0..2^64-1)")
    return int(text)


def pos_int(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive count")
    return int(text)


def on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise Done(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pb = load_proto(args.proto_out)
    signal.signal(signal.SIGTERM, on_sigterm)
    sched = Scheduler(pb, args)
    status = 0
    try:
        sched.run()
    except Done as d:
        status = d.status
    except KeyboardInterrupt:
        status = 130
    except Fatal as e:
        warn(str(e))
        status = 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        sched.close()
    if args.verbose:
        st = sched.stats
        warn(f"printed {sched.printed} events, cursor {sched.cursor}; delivered "
             f"{st['replay']} by replay and {st['pub']} from PUB; {st['gaps']} gaps, "
             f"{st['requests']} requests")
    return status


if __name__ == "__main__":
    sys.exit(main())
