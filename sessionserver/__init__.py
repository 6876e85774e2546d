"""tutorwire session server: live tutoring sessions over WebSocket."""

__version__ = "0.1.0"
