"""What the servers' request logs may say about a request: its method, path and status,
never its query string.

A query string is where a search sends what the desk typed (`/patients/?q=Ravi+Kumar`,
`?q=98200+55501`), and a sign-in redirect carries the page asked for with its query
(`/login?next=/patients/%3Fq%3D...`): a patient's name or phone number. Paths name records
by id only, which is not patient data. `install()` (called by `create_app`) puts
`RequestLogFilter` on the loggers of the servers Qure runs under:

* `werkzeug` (`flask serve`, `flask run`): its request lines are INFO, below the WARNING
  `create_app` sets, so they are written only where an operator turns them on; its
  malformed-request errors ("Bad request syntax ('GET /?q=... HTTP/1.1')") are written
  at ERROR, always.
* `gunicorn.error` ("Error handling request /path?query") and `gunicorn.access` (off by
  default; gunicorn.conf.py's format takes the path without the query, and the filter
  also covers a format changed to `%(r)s` or the referer `%(f)s`).
"""

from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType

REDACTED = "?[redacted]"


def frames(tb: TracebackType | None) -> str:
    """Where an exception was raised, frame by frame, for a log line that names its type:
    never its message, which can carry what a patient's row holds (a database error's
    DETAIL, an import's cell)."""
    return "".join(traceback.format_list(traceback.extract_tb(tb)))


REQUEST_LOGGERS = ("werkzeug", "gunicorn.error", "gunicorn.access")

# A request line's query, from its `?` to the protocol version, or (a line without one) to
# the end of the quoted line before its status: all of it, whatever it holds (a malformed
# line can have spaces or quotes in its query).
_REQUEST_LINE_QUERY = (re.compile(r"\?.*(?=\sHTTP/\d)"), re.compile(r"\?.*(?=\" \d{3}(?:\s|$))"))
# A request line the server could not parse is quoted, whole or in part, in its error
# ("Bad request syntax ('GET /?q=Rukmini Ramaswamy')"; gunicorn: "Invalid HTTP Version:
# 'Ramaswamy HTTP/1.1'"): where its query ends cannot be told, so all the quote goes.
_UNPARSED = re.compile(
    r"(?P<what>Bad request (?:syntax|version)|Bad HTTP/0\.9 request type"
    r"|Invalid HTTP (?:request line|Version|method))(?P<sep>:? \(?)(?P<q>['\"]).*(?P=q)"
)
# Any other URL's query (a referer, a bare URI): from the `?` after a path to the next
# space or double quote.
_URL_QUERY = re.compile(r"(/[^\s?\"]*)\?[^\s\"]*")


def redact(message: str) -> str:
    """`message` with the query string of every URL in it replaced by `?[redacted]`, and
    any request line the server could not parse left out."""
    if "?" not in message and "'" not in message and '"' not in message:
        return message
    redacted = []
    for line in message.split("\n"):
        line = _UNPARSED.sub(r"\g<what>\g<sep>[redacted]", line)
        for query in _REQUEST_LINE_QUERY:
            line, found = query.subn(REDACTED, line, count=1)
            if found:
                break
        redacted.append(_URL_QUERY.sub(lambda m: m.group(1) + REDACTED, line))
    return "\n".join(redacted)


class RequestLogFilter(logging.Filter):
    """Rewrites a record's message without the query strings of the URLs in it (the record
    is changed in place, so every handler writes the redacted line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a line its own handler cannot format either: left to it
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install() -> None:
    """Put the filter on each server's request logger (once, however many apps are made)."""
    for name in REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RequestLogFilter) for f in logger.filters):
            logger.addFilter(RequestLogFilter())
