"""The gateway's errors: each says what went wrong and how to fix it.

Hierarchy::

    GatewayError               base: ``code`` (stable, for scripts) and ``fix`` (a sentence)
    ├── DeviceError            no pen device, not permitted, vanished
    ├── MicrophoneError        no microphone, unreadable WAV
    ├── PairingError           code wrong or expired, server unreachable while pairing
    ├── ServerError            server unreachable, token expired or refused
    └── SpoolError             the spool file cannot be written or read
"""

from __future__ import annotations


class GatewayError(Exception):
    code = "gateway"

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}. Fix: {self.fix}" if self.fix else self.message


class DeviceError(GatewayError):
    code = "device"


class MicrophoneError(GatewayError):
    code = "microphone"


class PairingError(GatewayError):
    code = "pairing"


class ServerError(GatewayError):
    code = "server"


class SpoolError(GatewayError):
    code = "spool"
