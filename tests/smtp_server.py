#!/usr/bin/env python3
"""A real SMTP server for the test suite (aiosmtpd), on 127.0.0.1.

    python3 tests/smtp_server.py PORT SPOOL [--auth] [--tls CERT KEY | --starttls CERT KEY]

Every accepted message is written to SPOOL/NNNNN.eml (with the envelope recipients in
an X-Envelope-To header added by this server). The answer to DATA is read, per
message, from SPOOL/mode: "ok" (250), "451" (temporary), "550" (permanent), or
"slow-ack" (store the message, create SPOOL/received, wait 5 s, then 250): the test
kills the client in that window. Prints "ready PORT" when listening.

With --auth the server offers AUTH (PLAIN, LOGIN) on the plain connection, without
STARTTLS, accepts any credentials, and appends one line per AUTH command to
SPOOL/auth.log (the command's first word, never the secret): a client that sends its
password in clear leaves a line there.

With --tls the server speaks TLS from the first byte (smtps), with --starttls it offers
STARTTLS, both with the certificate and key in the PEM files given.

Every connection that carries mail (its first MAIL command) appends one line to
SPOOL/connections.log; the controller's own start-up probe sends none.
"""
import asyncio
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

port, spool = int(sys.argv[1]), sys.argv[2]
offer_auth = "--auth" in sys.argv[3:]


def tls_option(flag):
    """The server-side SSLContext for `flag CERT KEY`, or None."""
    if flag not in sys.argv:
        return None
    i = sys.argv.index(flag)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])
    return ctx


implicit_tls = tls_option("--tls")
starttls = tls_option("--starttls")
os.makedirs(spool, exist_ok=True)


def mode():
    try:
        with open(os.path.join(spool, "mode")) as f:
            return f.read().strip() or "ok"
    except FileNotFoundError:
        return "ok"


class Handler:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        m = mode()
        if m == "451":
            return "451 4.3.0 try again later"
        if m == "550":
            return "550 5.7.1 rejected by policy"
        Handler.count += 1
        name = os.path.join(spool, f"{Handler.count:05d}.eml")
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        with open(name + ".tmp", "wb") as f:
            f.write(("X-Envelope-To: " + ",".join(envelope.rcpt_tos) + "\r\n").encode())
            f.write(data)
        os.rename(name + ".tmp", name)
        if m == "slow-ack":
            open(os.path.join(spool, "received"), "w").close()
            await asyncio.sleep(5)
        return "250 OK"


class RecordingSMTP(SMTP):
    carried_mail = False

    async def smtp_MAIL(self, arg):
        if not self.carried_mail:
            self.carried_mail = True
            with open(os.path.join(spool, "connections.log"), "a") as f:
                f.write("connection\n")
        await super().smtp_MAIL(arg)

    async def smtp_AUTH(self, arg):
        with open(os.path.join(spool, "auth.log"), "a") as f:
            f.write("AUTH " + (arg or "").split(" ")[0] + "\n")
        await super().smtp_AUTH(arg)


class RecordingController(Controller):
    def factory(self):
        return RecordingSMTP(self.handler, **self.SMTP_kwargs)


auth = {}
if offer_auth:
    auth = {
        "auth_require_tls": False,
        "authenticator": lambda server, session, envelope, mechanism, data: AuthResult(success=True),
    }
if implicit_tls:
    auth["ssl_context"] = implicit_tls
if starttls:
    auth["tls_context"] = starttls
controller = RecordingController(
    Handler(), hostname="127.0.0.1", port=port, server_hostname="smtp.test", **auth
)
controller.start()
print(f"ready {port}", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
finally:
    controller.stop()
