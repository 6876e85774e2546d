"""``python -m pen_gateway``: the same as ``tutorwire pen-gateway``."""

import sys

from .cli import main

sys.exit(main())
