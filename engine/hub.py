"""Names of models on the Hugging Face hub: the one rule that tells ``owner/name`` from a local path."""

from __future__ import annotations

import re

#: A hub repository id, ``owner/name`` (a local path may look like one: check the disk first where it matters).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9_]$")
