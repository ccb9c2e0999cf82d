#!/usr/bin/python3
"""A small fieldsync reminder scheduler, written against docs/protocol.md alone.

It subscribes to the daemon's reminder PUB (docs/protocol.md §6), first replays
every stored event after its cursor over the sync endpoint, then follows the
PUB, fills gaps in ``seq`` by replay and drops duplicates. Each event is
delivered once, in ``seq`` order: printed as

    seq STATE rule reminder_id scope=S case=C contact_person=P due=2026-04-01 00:00 CEST

(--json: one JSON object per line, times in ms), or handed to --exec CMD.
Its flags, state file and exit codes are those of `fieldsync watch`
(docs/man/fieldsync.1):

- --credential FILE (or $FIELDSYNC_CREDENTIAL): the scheduler credential JSON
  `fieldsyncd enroll` wrote, the same file the CLI reads; both sockets then
  use CURVE (pyzmq's curve_serverkey / curve_publickey / curve_secretkey),
  and --endpoint defaults to the credential's.
- --state FILE: resume from the cursor in FILE, save it after every event
  (temp file, fsync, rename, fsync of the directory). A file that is not one
  seq number exits 78, never read as 0.
- A cursor ahead of the daemon's last event (a restore) exits 79, unless
  --on-restore=replay (from seq 1) or --on-restore=skip (after the daemon's
  last) says what to do.
- Events after the cursor that the daemon no longer keeps (its retention
  trimmed them: Error INVALID "TRIMMED: events before seq N ...", see
  docs/reminders.md) exit 80, naming N, unless --on-trimmed=skip: then the
  scheduler warns and continues from N - 1 (resynchronise first). Only the
  cursor's own event trimmed loses nothing: it just continues.
- --exec CMD: runs CMD (sh -c) once per event, the event's JSON on stdin and
  FS_EVENT_SEQ, FS_REMINDER_ID, FS_RULE, FS_STATE, FS_SCOPE, FS_CASE_ID,
  FS_CONTACT_PERSON, FS_DUE_AT_MS, FS_EMITTED_AT_MS, FS_DUE_AT,
  FS_IDEMPOTENCY_KEY (reminder_id@seq), FS_ATTEMPT in its environment; the
  cursor advances only when CMD exits 0, a failing CMD is retried (doubling
  from --retry-delay up to 60 s) and never skipped.

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
2 on a usage error (a bad credential too); 78 for a corrupt --state file;
79 for a cursor ahead of the daemon; 80 for events after the cursor that the
daemon trimmed; 130 on Ctrl-C and 143 on SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import stat
import subprocess
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
RETRY_MAX_S = 60.0     # --exec: the longest delay between two runs of CMD

EX_FATAL = 1
EX_USAGE = 2
EX_STATE = 78          # the --state file is corrupt
EX_RESTORED = 79       # the cursor is ahead of the daemon (a restore)
EX_TRIMMED = 80        # events after the cursor were trimmed by the daemon's retention
TRIMMED = "TRIMMED: "  # the message prefix of that answer (Error code INVALID)


class Done(Exception):
    """The run is over; exit with `status`."""

    def __init__(self, status: int = 0) -> None:
        super().__init__(status)
        self.status = status


class Fatal(Exception):
    """The daemon answered something this scheduler cannot recover from."""

    def __init__(self, msg: str, status: int = EX_FATAL) -> None:
        super().__init__(msg)
        self.status = status


class CursorAhead(Exception):
    """The daemon does not hold the event at the cursor (a restore)."""


class Trimmed(Exception):
    """The daemon no longer keeps the events before seq `oldest` (retention)."""

    def __init__(self, oldest: int) -> None:
        super().__init__(oldest)
        self.oldest = oldest


def trimmed_oldest(message: str) -> int | None:
    """N of "TRIMMED: events before seq N are no longer kept; ...", else None."""
    if not message.startswith(TRIMMED):
        return None
    words = message[len(TRIMMED):].split()
    for i, w in enumerate(words[:-1]):
        if w == "seq" and words[i + 1].isdigit():
            return int(words[i + 1])
    return None


# -- the state file and the credential (the CLI's formats) ------------------

def state_read(path: str) -> int | None:
    """The cursor in path; None when there is no file. Raises Fatal(78)
    when it is not one seq number: never read as 0."""
    try:
        with open(path, "rb") as f:
            data = f.read(64)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Fatal(f"cannot read the state file {path}: {e.strerror}") from e
    text = data[:-1] if data.endswith(b"\n") else data
    if not text.isdigit() or len(text) > 20 or int(text) >= 2**64:
        raise Fatal(f"the state file {path} is corrupt (it must hold one seq number); it is "
                    "never reset to 0: fix it, or give --since SEQ to choose where to resume",
                    EX_STATE)
    return int(text)


def state_write(path: str, seq: int) -> None:
    """Saves the cursor atomically and durably: temp file, fsync, rename,
    fsync of the directory."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{seq}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_credential(path: str) -> dict[str, Any]:
    """The credential JSON `fieldsyncd enroll` wrote, checked as the CLI
    checks it: mode 0600, the keys present and 40 Z85 characters."""
    try:
        st = os.stat(path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise Fatal(f"{path}: the credential is accessible by group or others; "
                        f"chmod 600 {path}", EX_USAGE)
        with open(path, encoding="utf-8") as f:
            cred = json.load(f)
    except OSError as e:
        raise Fatal(f"{path}: {e.strerror}", EX_USAGE) from e
    except ValueError as e:
        raise Fatal(f"{path}: not a credential (not JSON: {e})", EX_USAGE) from e
    for k in ("server_public_key", "client_public_key", "client_secret_key"):
        v = cred.get(k) if isinstance(cred, dict) else None
        if not isinstance(v, str) or len(v) != 40:
            raise Fatal(f"{path}: the credential's {k} is missing or not 40 Z85 characters",
                        EX_USAGE)
    return cred


def local_time(ms: int, zone: str | None) -> str:
    """"2026-04-01 00:00 CEST": ms in zone (None: the machine's)."""
    saved = os.environ.get("TZ")
    if zone is not None:
        os.environ["TZ"] = zone
        time.tzset()
    try:
        return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(ms // 1000))
    finally:
        if zone is not None:
            if saved is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = saved
            time.tzset()


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
        self.curve(self.sub)
        self.sub.setsockopt(zmq.SUBSCRIBE, args.prefix.encode())
        self.sub.connect(args.reminders)
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.curve(self.dealer)
        self.dealer.connect(args.endpoint)
        now = time.monotonic()
        self.last_new = now    # for --idle-exit
        self.last_check = now  # for the 2 s replay check

    def curve(self, sock: Any) -> None:
        """CURVE client options from the credential, before connect."""
        cred = self.args.cred
        if cred is None:
            return
        sock.curve_serverkey = cred["server_public_key"].encode()
        sock.curve_publickey = cred["client_public_key"].encode()
        sock.curve_secretkey = cred["client_secret_key"].encode()

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
            if err.code == self.pb.Error.INVALID and \
                    (oldest := trimmed_oldest(err.message)) is not None:
                raise Trimmed(oldest)
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
        the daemon says there is no more. Each request starts at cursor - 1,
        so the reply covers the cursor's own event: a last_seq below the
        cursor means the daemon lost events we had (CursorAhead). When the
        retention trimmed the cursor's own event (TRIMMED with N = cursor + 1)
        nothing after the cursor is missing: ask from the cursor itself. An
        earlier N means events after the cursor are gone (Trimmed)."""
        check = True

        def ask(env: Any) -> None:
            env.replay.since_seq = max(0, self.cursor - 1) if check else self.cursor
            env.replay.limit = PAGE

        while True:
            before = self.cursor
            try:
                reply = self.call(ask)
            except Trimmed as t:
                if not check or self.cursor == 0 or t.oldest != self.cursor + 1:
                    raise
                check = False
                continue
            check = True
            if reply.WhichOneof("body") != "replay_reply":
                raise Fatal(f"expected a ReplayReply, got {reply.WhichOneof('body')}")
            page = reply.replay_reply
            if self.cursor > 0 and page.last_seq < self.cursor:
                raise CursorAhead()
            for ev in page.events:
                self.deliver(ev, topic=None)
            # The next page starts after last_seq, which may lie past the last
            # event returned (events this peer may not see), never before it.
            self.cursor = max(self.cursor, page.last_seq)
            self.last_check = time.monotonic()
            if not page.more:
                return
            if self.cursor <= before:
                raise Fatal(f"replay after {before} made no progress but says more")

    def holds(self, seq: int) -> bool:
        """Does the daemon hold event seq (>= 1)? Replay from seq - 1, limit 1."""
        def ask(env: Any) -> None:
            env.replay.since_seq = seq - 1
            env.replay.limit = 1
        try:
            reply = self.call(ask)
        except Trimmed as t:
            return seq < t.oldest  # trimmed events were held; the daemon's last is later
        if reply.WhichOneof("body") != "replay_reply":
            raise Fatal(f"expected a ReplayReply, got {reply.WhichOneof('body')}")
        return reply.replay_reply.last_seq >= seq

    def daemon_last_seq(self) -> int:
        """The daemon's last event seq, by bisection over holds()."""
        lo, hi = 0, max(1, self.cursor)
        while self.holds(hi):
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.holds(mid) else (lo, mid)
        return lo

    # -- events ------------------------------------------------------------

    def deliver(self, ev: Any, topic: str | None) -> None:
        """Acts on ev if it is the next one; drops duplicates (seq <= cursor)."""
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
        if (self.args.rule is not None and ev.rule != self.args.rule) or \
                (self.args.scope is not None and ev.scope != self.args.scope):
            return
        if self.args.exec is not None:
            self.run_exec(ev)
        else:
            self.emit(ev)
        if self.args.state is not None:
            state_write(self.args.state, ev.seq)
        self.printed += 1
        if self.args.count is not None and self.printed >= self.args.count:
            raise Done(0)

    def event_dict(self, ev: Any) -> dict[str, Any]:
        return {
            "seq": ev.seq, "reminder_id": ev.reminder_id, "rule": ev.rule,
            "state": enum_name(self.pb.ReminderEvent.State, ev.state), "scope": ev.scope,
            "case_id": ev.case_id, "contact_person": ev.contact_person,
            "due_at_ms": ev.due_at_ms, "emitted_at_ms": ev.emitted_at_ms,
        }

    def emit(self, ev: Any) -> None:
        d = self.event_dict(ev)
        if self.args.json:
            line = json.dumps(d, separators=(",", ":"))
        else:
            line = (f"{ev.seq} {d['state']:<9} {ev.rule:<18} {ev.reminder_id} "
                    f"scope={ev.scope} case={ev.case_id} "
                    f"contact_person={ev.contact_person or '-'} "
                    f"due={local_time(ev.due_at_ms, self.args.time_zone)}")
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def run_exec(self, ev: Any) -> None:
        """Runs --exec CMD for ev until it exits 0; never skips the event."""
        d = self.event_dict(ev)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FS_")}
        env.update({
            "FS_EVENT_SEQ": str(ev.seq), "FS_REMINDER_ID": ev.reminder_id,
            "FS_RULE": ev.rule, "FS_STATE": d["state"], "FS_SCOPE": ev.scope,
            "FS_CASE_ID": ev.case_id, "FS_CONTACT_PERSON": ev.contact_person,
            "FS_DUE_AT_MS": str(ev.due_at_ms), "FS_EMITTED_AT_MS": str(ev.emitted_at_ms),
            "FS_DUE_AT": local_time(ev.due_at_ms, self.args.time_zone),
            "FS_IDEMPOTENCY_KEY": f"{ev.reminder_id}@{ev.seq}",
        })
        data = (json.dumps(d, separators=(",", ":")) + "\n").encode()
        delay = self.args.retry_delay
        attempt = 1
        while True:
            env["FS_ATTEMPT"] = str(attempt)
            status = subprocess.run(["/bin/sh", "-c", self.args.exec], input=data, env=env,
                                    check=False).returncode
            if status == 0:
                return
            if status < 0:
                status = 128 - status
            warn(f"--exec exited {status} for seq {ev.seq} ({ev.reminder_id}); retry "
                 f"{attempt} in {delay:.1f} s, it is never skipped")
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            attempt += 1

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

    def on_cursor_ahead(self) -> None:
        """Reports a cursor ahead of the daemon, or acts on --on-restore."""
        cursor = self.cursor
        last = self.daemon_last_seq()
        where = f", from {self.args.state}" if self.args.state else ""
        if self.args.on_restore is None:
            raise Fatal(f"the cursor (seq {cursor}{where}) is ahead of the daemon's last event "
                        f"(seq {last}): the daemon was restored from a backup, or is another "
                        "daemon; nothing was delivered. Give --on-restore=replay to deliver "
                        "every stored event again (from seq 1), or --on-restore=skip to "
                        f"deliver only new ones (after seq {last})", EX_RESTORED)
        self.cursor = 0 if self.args.on_restore == "replay" else last
        warn(f"the cursor (seq {cursor}) was ahead of the daemon's last event (seq {last}): "
             f"a restore; --on-restore={self.args.on_restore}: resuming after seq "
             f"{self.cursor}")
        if self.args.state is not None:
            state_write(self.args.state, self.cursor)

    def on_trimmed(self, oldest: int) -> None:
        """Reports events after the cursor that the daemon trimmed, or acts on
        --on-trimmed=skip."""
        cursor = self.cursor
        where = f", from {self.args.state}" if self.args.state else ""
        if self.args.on_trimmed is None:
            raise Fatal(f"the daemon no longer keeps events {cursor + 1}..{oldest - 1} after the "
                        f"cursor (seq {cursor}{where}): its retention trimmed them; nothing "
                        "after the cursor was delivered. Resynchronise (rebuild what you "
                        "hold of the open reminders), then give --on-trimmed=skip to continue "
                        f"after seq {oldest - 1}", EX_TRIMMED)
        self.cursor = oldest - 1
        warn(f"events {cursor + 1}..{oldest - 1} were trimmed by the daemon; --on-trimmed=skip: "
             f"resuming after seq {self.cursor}")
        if self.args.state is not None:
            state_write(self.args.state, self.cursor)

    def run(self) -> None:
        while True:
            try:
                self.follow()
            except CursorAhead:
                self.on_cursor_ahead()
            except Trimmed as t:
                self.on_trimmed(t.oldest)

    def follow(self) -> None:
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
    env = os.environ.get
    p = argparse.ArgumentParser(
        description="Follow fieldsync reminders: replay, then PUB, gaps filled by replay. "
                    "The flags, state file and exit codes of `fieldsync watch`.")
    p.add_argument("-e", "--endpoint", default=env("FIELDSYNC_ENDPOINT") or None,
                   help="the sync endpoint, e.g. tcp://HOST:7400 ($FIELDSYNC_ENDPOINT; "
                        "default: the credential's)")
    p.add_argument("--reminders", default=env("FIELDSYNC_REMINDERS") or None,
                   help="the reminder PUB, e.g. tcp://HOST:7401 ($FIELDSYNC_REMINDERS)")
    p.add_argument("--credential", metavar="FILE", default=env("FIELDSYNC_CREDENTIAL") or None,
                   help="a scheduler credential from `fieldsyncd enroll`: CURVE "
                        "($FIELDSYNC_CREDENTIAL)")
    p.add_argument("--since", type=nonneg_int, default=None, metavar="SEQ",
                   help="deliver events after SEQ (default: the --state file's, else 0)")
    p.add_argument("--rule", help="only this rule")
    p.add_argument("--scope", help="only this scope")
    p.add_argument("--prefix", default=None,
                   help="topic prefix, e.g. reminder/quick-help/ (default from --rule and "
                        "--scope, else reminder/)")
    p.add_argument("--count", type=pos_int, metavar="N", help="exit after N events")
    p.add_argument("--state", metavar="FILE",
                   help="resume from the cursor in FILE and save it after every event")
    p.add_argument("--exec", metavar="CMD",
                   help="run CMD (sh -c) once per event; the cursor advances when it exits 0")
    p.add_argument("--retry-delay", type=float, default=1.0, metavar="SEC",
                   help="--exec: the first retry's delay, doubled up to 60 s (default 1)")
    p.add_argument("--on-restore", choices=("replay", "skip"),
                   help="a cursor ahead of the daemon: deliver again from seq 1, or only new ones")
    p.add_argument("--on-trimmed", choices=("skip",),
                   help="events after the cursor the daemon trimmed: continue after them "
                        "(resynchronise first); without it, exit 80")
    p.add_argument("--time-zone", metavar="ZONE", default=env("FIELDSYNC_TIME_ZONE") or None,
                   help="print times in ZONE, the service's (default: the machine's)")
    p.add_argument("--idle-exit", type=float, metavar="SECONDS",
                   help="exit after SECONDS without a new event")
    p.add_argument("-j", "--json", action="store_true", help="print JSON lines")
    p.add_argument("--verbose", action="store_true",
                   help="report gaps and, at exit, where the events came from (stderr)")
    p.add_argument("--proto-out", metavar="DIR", default=os.environ.get("FIELDSYNC_PROTO_OUT"),
                   help="where protoc wrote fieldsync/v1/sync_pb2.py ($FIELDSYNC_PROTO_OUT)")
    args = p.parse_args(argv)
    if args.proto_out is None:
        p.error("--proto-out DIR (or FIELDSYNC_PROTO_OUT) is required")
    args.cred = None
    if args.credential is not None:
        try:
            args.cred = load_credential(args.credential)
        except Fatal as e:
            p.error(str(e))
        if args.endpoint is None:
            args.endpoint = args.cred.get("endpoint")
    if args.endpoint is None:
        p.error("the sync endpoint is needed: --endpoint EP, $FIELDSYNC_ENDPOINT or "
                "--credential FILE")
    if args.reminders is None:
        p.error("the reminder PUB endpoint is needed: --reminders EP or $FIELDSYNC_REMINDERS")
    if args.prefix is None:
        args.prefix = "reminder/"
        if args.rule is not None:
            args.prefix += args.rule + "/"
            if args.scope is not None:
                args.prefix += args.scope
    if not args.prefix.startswith("reminder/"):
        p.error("--prefix must start with reminder/")
    if args.idle_exit is not None and not args.idle_exit > 0:
        p.error("--idle-exit must be > 0")
    if not 0 < args.retry_delay <= 3600:
        p.error("--retry-delay takes seconds, more than 0 and at most 3600")
    if args.exec is not None and args.exec == "":
        p.error("--exec takes a shell command")
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
    if args.since is None:
        try:
            saved = state_read(args.state) if args.state is not None else None
        except Fatal as e:
            warn(str(e))
            return e.status
        args.since = saved or 0
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
        status = e.status
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
