"""``python -m engage``: the same as the ``engage`` command."""

import sys

from engage.cli import main

sys.exit(main())
