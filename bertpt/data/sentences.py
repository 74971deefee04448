"""Documents → sentences, the units that NSP pairs are cut from.

`split_sentences` turns a document into its sentence list. "lines" takes each line as one sentence
(the input is already split, as in Google's format). "blingfire" splits each line as a paragraph
with Bling Fire (`pip install blingfire`), Microsoft's finite-state sentence breaker. It is compiled
C++, fast enough that sentence splitting never throttles the pipeline (a pure-Python splitter
would), and it knows abbreviations and numbers: "Mr.", "e.g.", "U.S.", "$3.50" end no sentence. Its wheel
bundles the native library for Linux x86_64, macOS and Windows only; elsewhere (Linux on ARM)
use "lines" with text split beforehand.
"""

from __future__ import annotations

import ctypes
import functools
import re
from collections.abc import Callable

from bertpt.errors import BertptError

SENTENCE_SPLITTERS = ("lines", "blingfire")


def split_sentences(document: str, splitter: str) -> list[str]:
    """The sentences of a document: its lines ("lines"), or its lines split by Bling Fire ("blingfire")."""
    lines = [s for line in document.split("\n") if (s := line.strip())]
    if splitter == "lines":
        return lines
    if splitter == "blingfire":
        text_to_sentences = _blingfire()
        # Per line: a line is a paragraph, and no sentence runs across paragraphs. A line without
        # sentence-ending punctuation is one sentence (Bling Fire never splits one; checked on the
        # Python docs corpus) and skips the call. Bling Fire answers "" when it fails; keep the line
        # whole then rather than lose it.
        return [
            s
            for line in lines
            for part in ((text_to_sentences(line) or line).split("\n") if _MAY_END.search(line) else (line,))
            if (s := part.strip())
        ]
    raise BertptError(f"--sentence_splitter {splitter}: expected one of {', '.join(SENTENCE_SPLITTERS)}")


_MAY_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]")  # . ! ? … 。！？


@functools.cache
def _blingfire() -> Callable[[str], str]:
    try:
        import blingfire
    except (ImportError, OSError) as e:  # OSError: the wheel has no native library for this platform
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BertptError(
            f"--sentence_splitter blingfire: cannot load Bling Fire ({reason}); "
            "pip install blingfire, or use --sentence_splitter lines"
        ) from None
    return _BlingFire(blingfire.blingfire.TextToSentences)


class _BlingFire:
    """blingfire.text_to_sentences with one reused output buffer: the packaged wrapper allocates a
    zeroed buffer per call, which cost as much as the splitting itself on paragraph-sized lines."""

    def __init__(self, native):
        self.native, self.buf = native, ctypes.create_string_buffer(1 << 16)

    def __call__(self, text: str) -> str:
        data = text.encode("utf-8")
        if 2 * len(data) > len(self.buf):  # the wrapper's own sizing rule
            self.buf = ctypes.create_string_buffer(2 * len(data))
        n = self.native(
            ctypes.c_char_p(data), ctypes.c_int(len(data)), ctypes.byref(self.buf), ctypes.c_int(len(self.buf))
        )
        if n == -1 or n > len(self.buf):
            return ""
        return self.buf.raw[:n].rstrip(b"\0").decode("utf-8")
