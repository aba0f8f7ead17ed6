"""Several pictures side by side in one: the 2×2 grid a variations job is shown as."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

#: Pictures per row of a grid.
COLUMNS = 2


def grid(images: Sequence[Image.Image], columns: int = COLUMNS) -> Image.Image:
    """``images`` in rows of ``columns``, left to right then top to bottom, each in a cell the size of the first.

    Four pictures make a 2×2 grid: V1 top left, V2 top right, V3 bottom
    left, V4 bottom right. A picture of another size is scaled to the cell.
    """
    if not images:
        raise ValueError("a grid needs at least one picture")
    width, height = images[0].size
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (width * min(columns, len(images)), height * rows), "white")
    for index, image in enumerate(images):
        cell = image if image.size == (width, height) else image.resize((width, height), Image.Resampling.LANCZOS)
        sheet.paste(cell.convert("RGB"), ((index % columns) * width, (index // columns) * height))
    return sheet
