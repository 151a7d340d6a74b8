"""Telling people things outside the app: appointment reminders, the morning's stock alerts.

A room builds a `Message` (who it is for, a subject, a body, and a `log_line` that names
nobody beyond initials) and hands it to `sender().send(message)`. `REMINDER_SENDER`
chooses the sender:

- `log` (the default): one line in the application log, the message's `log_line`: no
  phone, no e-mail address, no full name.
- `smtp`: an e-mail to `message.email`, through SMTP_HOST / SMTP_PORT (SMTP_STARTTLS,
  SMTP_USER / SMTP_PASSWORD when the server wants them), from SMTP_FROM.

Adding a channel (SMS, WhatsApp) is one class here: subclass `Sender`, set `name`
("sms"), and implement `send(message)` with the provider's client, sending to
`message.phone` (E.164, "+919876543210") and returning `Sent.NO_ADDRESS` when it is
None; read its settings (SMS_API_KEY, ...) from `current_app.config` (declare them in
qure/config.py); then add the class to `SENDERS`. `REMINDER_SENDER=sms` selects it; the
rooms that send change nothing. Never log the phone or the text sent: the log line is
`message.log_line`.

Core knows no domain: a Message is plain text and addresses, made by the room.
"""

from __future__ import annotations

import enum
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from flask import current_app

log = logging.getLogger(__name__)
# The log sender's lines are the record of what was sent: shown at INFO even where nothing
# configured logging (Python's fallback prints warnings only).
log.setLevel(logging.INFO)


def _shown() -> None:
    """Give the log a handler of its own when no one configured logging (at the first
    line sent, so a handler configured at start is used instead)."""
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        log.addHandler(handler)


class Sent(enum.StrEnum):
    SENT = "SENT"
    NO_ADDRESS = "NO_ADDRESS"  # the person has no address for this channel: skipped


@dataclass(frozen=True)
class Message:
    """What to tell one person. `log_line` is what the log may say about it (initials, a
    time, a doctor: never a phone, an e-mail address or a full name)."""

    subject: str
    body: str
    log_line: str
    email: str | None = None
    phone: str | None = None


class Sender:
    """Sends a Message through one channel."""

    name = "base"

    def send(self, message: Message) -> Sent:
        """Send `message`; returns SENT, or NO_ADDRESS when the person cannot be reached
        on this channel. A channel that fails raises (the job retries)."""
        raise NotImplementedError


class LogSender(Sender):
    """Writes one line to the application log per message (development, and clinics that
    have no mail server yet)."""

    name = "log"

    def send(self, message: Message) -> Sent:
        _shown()
        log.info("%s, via log", message.log_line)
        return Sent.SENT


class SmtpSender(Sender):
    """Sends an e-mail through the SMTP server of the SMTP_* settings."""

    name = "smtp"

    def send(self, message: Message) -> Sent:
        if not message.email:
            return Sent.NO_ADDRESS
        config = current_app.config
        mail = EmailMessage()
        mail["From"] = config["SMTP_FROM"]
        mail["To"] = message.email
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        timeout = config.get("SMTP_TIMEOUT_SECONDS", 10)
        with smtplib.SMTP(config["SMTP_HOST"], int(config["SMTP_PORT"]), timeout=timeout) as smtp:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls()
            if config.get("SMTP_USER"):
                smtp.login(config["SMTP_USER"], config.get("SMTP_PASSWORD") or "")
            smtp.send_message(mail)
        _shown()
        log.info("%s, via smtp", message.log_line)
        return Sent.SENT


SENDERS: dict[str, type[Sender]] = {cls.name: cls for cls in (LogSender, SmtpSender)}


def sender() -> Sender:
    """The sender `REMINDER_SENDER` names (`log` by default). An unknown name raises
    ValueError: a typo must not silently drop every reminder."""
    name = str(current_app.config.get("REMINDER_SENDER") or "log").strip().lower()
    if name not in SENDERS:
        raise ValueError(f"REMINDER_SENDER={name!r}: use one of {', '.join(sorted(SENDERS))}")
    return SENDERS[name]()


def initials(full_name: str) -> str:
    """ "Asha Kulkarni" -> "A.K." (what a log line may say of a person)."""
    parts = [p for p in full_name.replace(".", " ").split() if p]
    return "".join(f"{p[0].upper()}." for p in parts) or "?"
