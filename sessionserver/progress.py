"""Progress of long CLI work (many recordings, a whole roster): a bar on a terminal, nothing in a
pipe or a file, so scripts that read the command's output or its errors see only what they asked
for. The bar goes to standard error; standard output stays the command's result."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], what: str, total: int | None = None, stream: TextIO | None = None) -> Iterator[T]:
    """``items``, with a bar (tqdm) on ``stream`` (standard error) when it is a terminal."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=what, total=total, unit=f" {what}", file=out)
