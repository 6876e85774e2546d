"""Live audio: Opus packets forwarded as they arrived, never decoded or re-encoded.

``router`` fans a room's packets out to its listeners (``AudioSink``), whatever their transport;
``leg`` is the WebRTC leg of a participant (aiortc; ``sdp`` checks its offers, ``ice`` its sockets
and ICE restart, ``signalling`` drives it), the WebSocket leg lives in ``connection``.
"""
