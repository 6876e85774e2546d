"""Browser tests: Debian's Chromium, driven by Playwright, against the real server and pages.

They run only inside a private network namespace (``tests/test_browser.py`` starts them there
with ``TUTORWIRE_IN_NETNS=1``), so that the kernel, not good intentions, keeps WebRTC on loopback.
"""
