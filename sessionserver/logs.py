"""How the server logs: text or one JSON object per line (``TUTORWIRE_LOG_FORMAT``), and never a
secret. Every handler gets ``Redact``, which replaces anything shaped like a signed token (a JWT:
three base64url parts, the first starting ``eyJ``) and any ``Bearer`` credential with
``[redacted]``, so a token that reaches a log line by mistake (an exception message, a client's
bad header echoed back) is not kept."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
REDACTED = "[redacted]"
EXTRA_FIELDS = ("session_id", "pid", "user_id", "code", "room", "node")  # logged with extra={...}
FORMATS = ("text", "json")


def redact(text: str) -> str:
    return BEARER.sub(lambda m: m.group(1) + REDACTED, JWT.sub(REDACTED, text))


class Redact(logging.Filter):
    """Takes tokens out of a record's message (and its arguments) before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ms), ``level``, ``logger``, ``message``, the
    ``EXTRA_FIELDS`` a call gave, and ``exception`` (its traceback) where there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """The root logger at ``level`` with one handler in ``fmt`` (``text`` or ``json``); uvicorn's
    loggers write through it too, so every line of the process has the same shape."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.addFilter(Redact())
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
