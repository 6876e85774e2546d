"""Exports of a finished recording for researchers and for replay.

Every module here is pure: a ``RecordingData`` (``model.py``, filled by the loader from a
recording folder) goes in, text or bytes come out; nothing reads files or the network.

* ``strokes``: the events replayed into strokes, each point on the session clock
* ``inkml``: InkML 1.0, one trace per stroke, one trace group per page
* ``tables``: a CSV of every point, a JSON of every event
* ``wav``: the speakers decoded (opuslib) and mixed into one 16-bit 48 kHz WAV
* ``replay_html``: one self-contained HTML page that plays ink and audio together offline
* ``summary``: talk time, ink rates, silences and pages per session; a timeline SVG; a corpus CSV
"""
