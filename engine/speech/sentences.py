"""Long text cut into sentences, so a voice reply's first sentence can be spoken while the rest is still read."""

from __future__ import annotations

import re

#: A sentence ends at . ! ? ; … (followed by a space or the end) or at Chinese 。！？；, or at a line break.
_END = re.compile(r"(?<=[.!?;…])\s+|(?<=[。！？；])\s*|\s*\n+\s*")
#: Pieces shorter than this (in characters) are read with the sentence before them, not alone.
MIN_CHARS = 3


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence's end; very short pieces stay with the one before."""
    pieces: list[str] = []
    for piece in _END.split(text.strip()):
        piece = piece.strip()
        if not piece:
            continue
        if pieces and len(piece) < MIN_CHARS:
            pieces[-1] = f"{pieces[-1]} {piece}" if piece[0].isascii() else pieces[-1] + piece
        else:
            pieces.append(piece)
    return pieces
