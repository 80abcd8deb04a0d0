#!/usr/bin/python3
"""A minimal SMTP sink for the real-MTA tests (stdlib only).

Accepts every envelope and message and saves each message in a directory,
so a test can see where Postfix or Sendmail delivered what:

    from smtpsink import SmtpSink
    sink = SmtpSink(directory, name="A")          # port 0: any free port
    port = sink.start()                           # serves on 127.0.0.1
    ...
    msgs = sink.wait_for(1, timeout=20)           # list of SinkMessage
    msgs[0].rcpt_to, msgs[0].header("X-MTA-STS"), msgs[0].tls
    sink.stop()

Optional STARTTLS (tls_cert=PEM chain, tls_key=key): offered in the EHLO
reply; after the handshake the sink records the TLS version and cipher in
each message, so a test can tell that the MTA insisted on TLS.

Each message becomes two files in the directory: NNNN.eml (the raw DATA,
dot-unstuffed, CRLF kept) and NNNN.json (envelope, helo, tls, peer; written
last, by rename, so a .json file means the message is complete).

Also runs stand-alone:
    smtpsink.py --dir D [--port N] [--portfile F] [--tls-cert C --tls-key K]
                [--exit-with-parent]

Deliberately small: no AUTH, no BDAT/CHUNKING, no size limits beyond a
hard cap (MAX_MESSAGE) that answers 552.  The reply to a pipelined group of
commands is written per command, which clients that pipeline accept.
"""

import argparse
import email
import email.policy
import json
import os
import signal
import socketserver
import ssl
import sys
import threading
import time

__all__ = ["SmtpSink", "SinkMessage", "read_messages"]

MAX_LINE = 64 * 1024
MAX_MESSAGE = 10 * 1024 * 1024
IDLE_TIMEOUT = 60


class SinkMessage:
    """One stored message: envelope, raw data, parsed headers."""

    def __init__(self, meta, data, path):
        self.meta = meta
        self.data = data                  # bytes, CRLF line ends
        self.path = path                  # the .eml file
        self.mail_from = meta["mail_from"]
        self.rcpt_to = meta["rcpt_to"]
        self.tls = meta.get("tls")        # None or {"version", "cipher"}
        self.helo = meta.get("helo")
        self.seq = meta["seq"]
        self.msg = email.message_from_bytes(data, policy=email.policy.compat32)

    def headers(self, name):
        """All values of header NAME (unfolded, stripped), in order."""
        vals = self.msg.get_all(name) or []
        return [" ".join(str(v).split()) for v in vals]

    def header(self, name):
        """The single value of header NAME; AssertionError unless exactly one."""
        vals = self.headers(name)
        if len(vals) != 1:
            raise AssertionError("message %s has %d %s headers, want 1: %r"
                                 % (os.path.basename(self.path), len(vals), name, vals))
        return vals[0]

    def summary(self):
        hdr = self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        return ("message %d from <%s> to %s tls=%s\n%s"
                % (self.seq, self.mail_from, ", ".join("<%s>" % r for r in self.rcpt_to),
                   self.tls, hdr))

    def __repr__(self):
        return "<SinkMessage %d to %s>" % (self.seq, self.rcpt_to)


def read_messages(directory):
    """All complete messages in directory, oldest first."""
    out = []
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json"))
    except FileNotFoundError:
        return out
    for n in names:
        jpath = os.path.join(directory, n)
        epath = jpath[:-5] + ".eml"
        try:
            with open(jpath) as fh:
                meta = json.load(fh)
            with open(epath, "rb") as fh:
                data = fh.read()
        except (OSError, ValueError):
            continue
        out.append(SinkMessage(meta, data, epath))
    return out


class _Handler(socketserver.StreamRequestHandler):
    timeout = IDLE_TIMEOUT

    def setup(self):
        super().setup()
        self.sink = self.server.sink
        self.tls = None
        self.helo = None
        self.reset()

    def finish(self):
        try:
            super().finish()
        except OSError as e:
            # A reply still buffered for a client that has gone (e.g. one
            # that rejected our certificate and hung up): nothing to send to.
            self.sink.note("connection error at close: %s" % e)
        finally:
            if self.tls is not None:
                self.connection.close()

    def reset(self):
        self.mail_from = None
        self.rcpt_to = []

    def reply(self, text):
        self.wfile.write(text.encode("ascii") + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            return None
        if len(line) > MAX_LINE:
            raise ValueError("line too long")
        return line

    def handle(self):
        try:
            self.reply("220 %s ESMTP mtasts test sink %s" % (self.sink.hostname, self.sink.name))
            while True:
                line = self.readline()
                if line is None:
                    return
                if not self.command(line.rstrip(b"\r\n").decode("latin-1")):
                    return
        except (OSError, ValueError, ssl.SSLError) as e:
            self.sink.note("connection error: %s" % e)

    def command(self, line):
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        self.sink.note("<<< %s" % line)
        if verb in ("EHLO", "HELO"):
            self.helo = arg.strip()
            self.reset()
            if verb == "HELO":
                self.reply("250 %s" % self.sink.hostname)
                return True
            ext = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
                   "SIZE %d" % MAX_MESSAGE]
            if self.sink.tls_context and self.tls is None:
                ext.append("STARTTLS")
            lines = [self.sink.hostname] + ext
            for l in lines[:-1]:
                self.reply("250-" + l)
            self.reply("250 " + lines[-1])
        elif verb == "STARTTLS":
            if not self.sink.tls_context or self.tls is not None:
                self.reply("502 5.5.1 STARTTLS not available")
                return True
            self.reply("220 2.0.0 Ready to start TLS")
            # Anything the client pipelined after STARTTLS is discarded with
            # the old buffered reader (RFC 3207 section 4.2).
            conn = self.sink.tls_context.wrap_socket(self.request, server_side=True)
            self.request = self.connection = conn
            self.rfile = conn.makefile("rb")
            self.wfile = conn.makefile("wb")
            self.tls = {"version": conn.version(), "cipher": conn.cipher()[0]}
            self.helo = None
            self.reset()
        elif verb == "MAIL":
            if not arg.upper().startswith("FROM:"):
                self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            elif self.mail_from is not None:
                self.reply("503 5.5.1 Nested MAIL command")
            else:
                self.mail_from = _path(arg[5:])
                self.reply("250 2.1.0 Ok")
        elif verb == "RCPT":
            if self.mail_from is None:
                self.reply("503 5.5.1 Need MAIL command")
            elif not arg.upper().startswith("TO:"):
                self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            else:
                self.rcpt_to.append(_path(arg[3:]))
                self.reply("250 2.1.5 Ok")
        elif verb == "DATA":
            if not self.rcpt_to:
                self.reply("503 5.5.1 Need RCPT command")
                return True
            self.reply("354 End data with <CR><LF>.<CR><LF>")
            data, too_big = self.read_data()
            if data is None:
                return False
            if too_big:
                self.reply("552 5.3.4 Message too big")
            else:
                seq = self.sink.store(self, data)
                self.reply("250 2.0.0 Ok: queued as SINK%s%04d" % (self.sink.name, seq))
            self.reset()
        elif verb == "RSET":
            self.reset()
            self.reply("250 2.0.0 Ok")
        elif verb == "NOOP":
            self.reply("250 2.0.0 Ok")
        elif verb == "VRFY":
            self.reply("252 2.0.0 Cannot VRFY")
        elif verb == "QUIT":
            self.reply("221 2.0.0 Bye")
            return False
        else:
            self.reply("502 5.5.2 Command not recognized")
        return True

    def read_data(self):
        parts, size, too_big = [], 0, False
        while True:
            line = self.readline()
            if line is None:
                return None, False
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > MAX_MESSAGE:
                too_big = True
                parts = []
            elif not too_big:
                parts.append(line)
        return b"".join(parts), too_big


def _path(arg):
    """The address inside <...> of a MAIL FROM/RCPT TO argument (params dropped)."""
    arg = arg.strip()
    if arg.startswith("<"):
        end = arg.find(">")
        return arg[1:end] if end > 0 else arg[1:]
    return arg.split(" ", 1)[0]


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops concurrent clients, which
    # then retry after a second.
    request_queue_size = 128
    daemon_threads = True


class SmtpSink:
    """An SMTP server on host:port that stores every message in directory."""

    def __init__(self, directory, port=0, host="127.0.0.1", name="sink",
                 hostname=None, tls_cert=None, tls_key=None):
        self.directory = os.path.abspath(directory)
        self.host, self.port, self.name = host, port, name
        self.hostname = hostname or ("sink-%s.test" % name.lower())
        self.tls_context = None
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_cert, tls_key)
            self.tls_context = ctx
        self._lock = threading.Lock()
        self._seq = 0
        self._server = None
        self._thread = None
        self.transcript = []       # "<<< command" lines and errors, for diagnostics

    def note(self, text):
        with self._lock:
            self.transcript.append("%.3f %s" % (time.time(), text))
            del self.transcript[:-500]

    def start(self):
        """Bind and serve in a daemon thread; returns the port."""
        os.makedirs(self.directory, exist_ok=True)
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="smtpsink-" + self.name, daemon=True)
        self._thread.start()
        return self.port

    def serve_forever(self):
        """Bind and serve in this thread (stand-alone use)."""
        os.makedirs(self.directory, exist_ok=True)
        self._server = _Server((self.host, self.port), _Handler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        return self._server

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def store(self, handler, data):
        with self._lock:
            self._seq += 1
            seq = self._seq
        base = os.path.join(self.directory, "%04d" % seq)
        with open(base + ".eml", "wb") as fh:
            fh.write(data)
        meta = {"seq": seq, "sink": self.name, "time": time.time(),
                "mail_from": handler.mail_from, "rcpt_to": list(handler.rcpt_to),
                "helo": handler.helo, "tls": handler.tls,
                "peer": "%s:%d" % handler.client_address[:2]}
        with open(base + ".json.tmp", "w") as fh:
            json.dump(meta, fh, indent=1)
        os.rename(base + ".json.tmp", base + ".json")
        self.note("stored message %d for %s" % (seq, meta["rcpt_to"]))
        return seq

    def messages(self):
        return read_messages(self.directory)

    def wait_for(self, count, timeout=30.0, interval=0.05):
        """Wait until at least count messages are stored; returns them all.
        AssertionError (with the transcript) after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            if len(msgs) >= count:
                return msgs
            if time.monotonic() > deadline:
                raise AssertionError("sink %s: %d message(s) after %.0f s, want %d\n%s"
                                     % (self.name, len(msgs), timeout, count,
                                        self.describe(tail=15)))
            time.sleep(interval)

    def describe(self, tail=40):
        """Diagnostic text: stored messages and the end of the transcript."""
        out = ["sink %s on port %s (%s):" % (self.name, self.port, self.directory)]
        for m in self.messages():
            out.append("  " + m.summary().replace("\n", "\n    "))
        with self._lock:
            out += ["  " + l for l in self.transcript[-tail:]]
        return "\n".join(out)


def _exit_with_parent():
    # Stand-alone mode: leave when the parent goes (like the fixtures do).
    ppid = os.getppid()

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != ppid:
                os._exit(0)
    threading.Thread(target=watch, daemon=True).start()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", default="sink")
    ap.add_argument("--portfile")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--exit-with-parent", action="store_true")
    a = ap.parse_args(argv)
    sink = SmtpSink(a.dir, a.port, a.host, a.name, tls_cert=a.tls_cert, tls_key=a.tls_key)
    server = sink.serve_forever()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if a.exit_with_parent:
        _exit_with_parent()
    if a.portfile:
        with open(a.portfile + ".tmp", "w") as fh:
            fh.write("%d\n" % sink.port)
        os.rename(a.portfile + ".tmp", a.portfile)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
