"""An LMTP sink for the real-MTA tests (stdlib only): tests/mta/smtpsink.py
speaking LMTP (RFC 2033), the way Dovecot's LMTP service takes mail from
Postfix's lmtp(8) client (virtual_transport = lmtp:inet:127.0.0.1:24).

    from lmtpsink import LmtpSink
    sink = LmtpSink(directory, port=24, name="lmtp")
    sink.start()
    sink.wait_for(1)[0].rcpt_to            # SinkMessage, as with SmtpSink
    sink.stop()

LHLO instead of EHLO/HELO (those get 500), and after DATA one reply per
accepted recipient.  Everything else (storage, transcript, messages())
is SmtpSink's.
"""

import threading

import smtpsink
from smtpsink import SmtpSink

__all__ = ["LmtpSink"]


class _LmtpHandler(smtpsink._Handler):
    def command(self, line):
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        if verb == "LHLO":
            self.sink.note("<<< %s" % line)
            self.helo = arg.strip()
            self.reset()
            for l in ("250-" + self.sink.hostname, "250-PIPELINING", "250-8BITMIME",
                      "250 ENHANCEDSTATUSCODES"):
                self.wfile.write(l.encode("ascii") + b"\r\n")
            self.wfile.flush()
            return True
        if verb in ("EHLO", "HELO"):
            self.sink.note("<<< %s" % line)
            self.reply("500 5.5.1 this is LMTP: LHLO")
            return True
        if verb == "DATA" and self.mail_from is not None and self.rcpt_to:
            self.sink.note("<<< %s" % line)
            self.reply("354 End data with <CR><LF>.<CR><LF>")
            data, too_big = self.read_data()
            if data is None:
                return False
            if too_big:
                for r in self.rcpt_to:
                    self.reply("552 5.3.4 <%s> Message too big" % r)
            else:
                seq = self.sink.store(self, data)
                for r in self.rcpt_to:
                    self.reply("250 2.0.0 <%s> Saved as LMTP%s%04d" % (r, self.sink.name, seq))
            self.reset()
            return True
        return super().command(line)


class LmtpSink(SmtpSink):
    """SmtpSink that speaks LMTP (no STARTTLS)."""

    def __init__(self, directory, port=0, host="127.0.0.1", name="lmtp", hostname=None):
        super().__init__(directory, port=port, host=host, name=name, hostname=hostname)

    def start(self):
        import os
        os.makedirs(self.directory, exist_ok=True)
        self._server = smtpsink._Server((self.host, self.port), _LmtpHandler)
        self._server.sink = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="lmtpsink-" + self.name, daemon=True)
        self._thread.start()
        return self.port
