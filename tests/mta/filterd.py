"""A small after-queue content filter for the real-MTA tests (stdlib only).

Postfix's content_filter = scan:[127.0.0.1]:10024 hands every message to
it by SMTP; it adds one header and passes the message on, by SMTP, to the
re-injection smtpd (127.0.0.1:10025 of packaging/postfix/content-filter.snippet),
the way amavis and other SMTP filters do:

    from filterd import ContentFilter
    f = ContentFilter(listen_port=10024, reinject_port=10025)
    f.start()                              # serves in a thread
    ...
    f.scans                                # list of Scan, one per message passed on
    f.count                                # how many messages were passed on
    f.stop()

Proxy style, so that per-recipient answers pass back unchanged: MAIL and
each RCPT are sent on to the re-injection smtpd as they arrive and its
reply is the filter's reply (a 452 4.5.3 there becomes a 452 4.5.3 for
Postfix's scan transport, which defers that recipient and sends it again
in a new transaction).  At the end of DATA the message gets
"X-Scanned-By: test-filter (scan N)" on top, N counting the messages the
filter passed on, and the re-injection smtpd's final reply (250 ... queued
as QID) is the filter's.  XFORWARD is offered and passed on, so the
re-injection smtpd logs the original client.  No PIPELINING, no TLS, no
DSN: the smallest thing Postfix's smtp client talks to.
"""

import smtplib
import socketserver
import threading
import time

__all__ = ["ContentFilter", "Scan", "HEADER"]

HEADER = "X-Scanned-By"
MAX_LINE = 64 * 1024


class Scan:
    """One message the filter passed on: seq (the N of its header),
    mail_from, rcpts (accepted downstream), refused ({rcpt: (code, text)}),
    reply (the re-injection smtpd's final reply), queue_id (from it),
    message_id, data (as passed on, header added)."""

    def __init__(self, seq, mail_from, rcpts, refused, reply, data):
        import re
        self.seq, self.mail_from = seq, mail_from
        self.rcpts, self.refused = list(rcpts), dict(refused)
        self.reply, self.data = reply, data
        m = re.search(r"queued as ([0-9A-Za-z]+)", reply[1])
        self.queue_id = m.group(1) if m else None
        m = re.search(rb"^Message-ID:[ \t]*(\S+)\r?$", data.split(b"\r\n\r\n", 1)[0],
                      re.M | re.I)
        self.message_id = m.group(1).decode("latin-1") if m else None

    def __repr__(self):
        return "<Scan %d %s to %s refused %s -> %s>" % (
            self.seq, self.message_id, self.rcpts, list(self.refused), self.reply)


def _reply_lines(code, text):
    lines = text.split("\n") if text else [""]
    out = []
    for i, l in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append("%d%s%s" % (code, sep, l.rstrip("\r")))
    return out


class _Handler(socketserver.StreamRequestHandler):
    timeout = 120

    def setup(self):
        super().setup()
        self.f = self.server.filter
        self.down = None
        self.xforward = []
        self.reset()

    def reset(self):
        self.mail_from = None
        self.rcpts = []
        self.refused = {}

    def reply(self, code, text):
        for l in _reply_lines(code, text):
            self.wfile.write(l.encode("latin-1") + b"\r\n")
        self.wfile.flush()

    def close_down(self, quit=True):
        if self.down is not None:
            try:
                if quit:
                    self.down.quit()
                else:
                    self.down.close()
            except (OSError, smtplib.SMTPException):
                pass
            self.down = None

    def finish(self):
        self.close_down()
        try:
            super().finish()
        except OSError:
            pass

    def handle(self):
        try:
            self.reply(220, "%s ESMTP test content filter" % self.f.hostname)
            while True:
                line = self.rfile.readline(MAX_LINE + 1)
                if not line:
                    return
                if not self.command(line.rstrip(b"\r\n").decode("latin-1")):
                    return
        except (OSError, ValueError, smtplib.SMTPException) as e:
            self.f.note("connection error: %s" % e)

    def downstream(self, what, code_text):
        code, text = code_text
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        self.f.note("%s -> %d %s" % (what, code, text.replace("\n", " | ")))
        return code, text

    def command(self, line):
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        self.f.note("<<< %s" % line)
        if verb in ("EHLO", "HELO"):
            self.reset()
            self.close_down()
            self.xforward = []
            if verb == "HELO":
                self.reply(250, self.f.hostname)
            else:
                self.reply(250, "\n".join([self.f.hostname, "8BITMIME", "ENHANCEDSTATUSCODES",
                                           "XFORWARD NAME ADDR PROTO HELO SOURCE"]))
        elif verb == "XFORWARD":
            self.xforward.append(arg)
            self.reply(250, "2.0.0 Ok")
        elif verb == "MAIL":
            if self.mail_from is not None:
                self.reply(503, "5.5.1 Nested MAIL command")
                return True
            try:
                self.down = smtplib.SMTP("127.0.0.1", self.f.reinject_port,
                                         local_hostname=self.f.hostname, timeout=60)
                self.down.ehlo()
                for x in self.xforward:
                    code, text = self.downstream("XFORWARD", self.down.docmd("XFORWARD", x))
                    if code != 250:
                        self.close_down()
                        self.reply(451, "4.3.0 re-injection refused XFORWARD: %d %s"
                                   % (code, text))
                        return True
            except (OSError, smtplib.SMTPException) as e:
                self.close_down(quit=False)
                self.reply(451, "4.3.0 cannot reach the re-injection service: %s" % e)
                return True
            code, text = self.downstream("MAIL", self.down.docmd("MAIL", arg))
            if code == 250:
                a = arg[5:].strip() if arg.upper().startswith("FROM:") else arg
                self.mail_from = a.split(">", 1)[0].lstrip("<")
            else:
                self.close_down()
            self.reply(code, text)
        elif verb == "RCPT":
            if self.down is None or self.mail_from is None:
                self.reply(503, "5.5.1 Need MAIL command")
                return True
            code, text = self.downstream("RCPT", self.down.docmd("RCPT", arg))
            rcpt = arg[3:].strip() if arg.upper().startswith("TO:") else arg
            rcpt = rcpt.split(">", 1)[0].lstrip("<")
            if code == 250:
                self.rcpts.append(rcpt)
            else:
                self.refused[rcpt] = (code, text)
            self.reply(code, text)
        elif verb == "DATA":
            if not self.rcpts:
                self.reply(554, "5.5.1 No valid recipients")
                return True
            self.reply(354, "End data with <CR><LF>.<CR><LF>")
            data = self.read_data()
            if data is None:
                return False
            seq = self.f.next_seq()
            data = ("%s: test-filter (scan %d)\r\n" % (HEADER, seq)).encode("ascii") + data
            try:
                code, text = self.downstream("DATA", self.down.data(data))
            except smtplib.SMTPDataError as e:
                code, text = self.downstream("DATA", (e.smtp_code, e.smtp_error))
            except (OSError, smtplib.SMTPException) as e:
                code, text = 451, "4.3.0 re-injection failed: %s" % e
            if code == 250:
                self.f.add_scan(Scan(seq, self.mail_from, self.rcpts, self.refused,
                                     (code, text), data))
            self.close_down()
            self.reset()
            self.reply(code, text)
        elif verb == "RSET":
            self.close_down()
            self.reset()
            self.reply(250, "2.0.0 Ok")
        elif verb == "NOOP":
            self.reply(250, "2.0.0 Ok")
        elif verb == "QUIT":
            self.reply(221, "2.0.0 Bye")
            return False
        else:
            self.reply(502, "5.5.2 Command not recognized")
        return True

    def read_data(self):
        parts = []
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return None
            if line in (b".\r\n", b".\n"):
                return b"".join(parts)
            if line.startswith(b"."):
                line = line[1:]
            parts.append(line)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    request_queue_size = 64
    daemon_threads = True


class ContentFilter:
    """The filter on 127.0.0.1:listen_port re-injecting to reinject_port."""

    def __init__(self, listen_port=10024, reinject_port=10025, hostname="filter.test"):
        self.listen_port, self.reinject_port = listen_port, reinject_port
        self.hostname = hostname
        self._lock = threading.Lock()
        self._seq = 0
        self.scans = []
        self.transcript = []
        self._server = None
        self._thread = None

    def note(self, text):
        with self._lock:
            self.transcript.append("%.3f %s" % (time.time(), text))
            del self.transcript[:-1000]

    def next_seq(self):
        with self._lock:
            self._seq += 1
            return self._seq

    def add_scan(self, scan):
        with self._lock:
            self.scans.append(scan)

    @property
    def count(self):
        """Messages passed on (a 250 from the re-injection service)."""
        with self._lock:
            return len(self.scans)

    def scans_of(self, message_id):
        with self._lock:
            return [s for s in self.scans if s.message_id == message_id]

    def start(self):
        self._server = _Server(("127.0.0.1", self.listen_port), _Handler)
        self._server.filter = self
        self.listen_port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="content-filter", daemon=True)
        self._thread.start()
        return self.listen_port

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def describe(self, tail=40):
        with self._lock:
            out = ["content filter :%d -> :%d, %d scan(s):" % (
                self.listen_port, self.reinject_port, len(self.scans))]
            out += ["  %r" % s for s in self.scans]
            out += ["  " + l for l in self.transcript[-tail:]]
        return "\n".join(out)
