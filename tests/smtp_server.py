#!/usr/bin/env python3
"""A real SMTP server for the test suite (aiosmtpd), on 127.0.0.1.

    python3 tests/smtp_server.py PORT SPOOL

Every accepted message is written to SPOOL/NNNNN.eml (with the envelope recipients in
an X-Envelope-To header added by this server). The answer to DATA is read, per
message, from SPOOL/mode: "ok" (250), "451" (temporary), "550" (permanent), or
"slow-ack" (store the message, create SPOOL/received, wait 5 s, then 250): the test
kills the client in that window. Prints "ready PORT" when listening.
"""
import asyncio
import os
import sys
import time

from aiosmtpd.controller import Controller

port, spool = int(sys.argv[1]), sys.argv[2]
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


controller = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="smtp.test")
controller.start()
print(f"ready {port}", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
finally:
    controller.stop()
