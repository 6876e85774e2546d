"""Live audio: Opus packets forwarded as they arrived, never decoded or re-encoded.

``router`` fans a room's packets out to its listeners (``AudioSink``), whatever their transport;
``rtc`` is the WebRTC leg of a participant (aiortc), the WebSocket leg lives in ``connection``.
"""
