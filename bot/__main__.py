"""``python -m bot`` = the ``voice2anime`` command."""

import sys

from bot.cli import main

sys.exit(main())
