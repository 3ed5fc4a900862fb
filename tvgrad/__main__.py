"""``python -m tvgrad`` is the ``tvgrad`` command."""

import sys

from .cli import main

sys.exit(main())
