"""A real SMTP server on a free local port for the tests of the `smtp` sender (aiosmtpd),
with the app's settings pointed at it while it runs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from aiosmtpd.controller import Controller


class Inbox:
    """What the server received; addresses in `refused` are refused (550)."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app) -> Iterator[Inbox]:
    """Start the server, send the app's mail to it (REMINDER_SENDER=smtp), and yield its
    inbox; the settings and the server are put back afterwards."""
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    saved = {k: app.config.get(k) for k in ("REMINDER_SENDER", "SMTP_HOST", "SMTP_PORT")}
    app.config.update(
        REMINDER_SENDER="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_FROM="desk@qure.test"
    )
    try:
        yield inbox
    finally:
        app.config.update(saved)
        controller.stop()
