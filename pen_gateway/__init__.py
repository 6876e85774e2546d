"""The pen gateway: the program on a tutor's PC that brings a writing pad's ink and the PC
microphone's voice into a live session over the session WebSocket.

Layers, each a small module (sans-I/O cores under thin asyncio shells, as in ``wire``):

* ``device``: what every pen adapter declares (``DeviceInfo``) and yields (``Sample``).
* ``evemu``, ``evdev_parser``: kernel input events as text or numbers in, samples out.
* ``adapters``: the one small interface (``PenAdapter``) and its implementations
  ``evdev_adapter``, ``replay``, ``synthetic``.
* ``pages``: the pad's area mapped onto session pages (calibration, aspect kept, next page).
* ``strokes``: samples become stroke ops in batches of at most 16 ms.
* ``audio``: microphone sources and the 20 ms Opus encoder.
* ``spool``: the crash-safe local spool (append, fsync in batches, drop on ack).
* ``gateway``: the asyncio shell around ``wire.session.ClientSession``.
* ``cli``: ``tutorwire pen-gateway`` and ``python -m pen_gateway``.

Depends on ``wire`` and a few libraries (python-evdev, opuslib, numpy, websockets), never on
``sessionserver``.
"""

from .errors import GatewayError

__all__ = ["GatewayError"]
