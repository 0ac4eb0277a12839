"""``python -m labkit.cli``: the ``labkit`` command, for environments without the console script."""
import sys

from labkit.cli import main

sys.exit(main())
