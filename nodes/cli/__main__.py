"""``python -m nodes.cli``: `bcx` without its installed script."""

import sys

from nodes.cli.main import main

sys.exit(main())
