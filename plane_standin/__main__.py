"""Run `python -m plane_standin`; see `plane_standin.cli`."""

import sys

from .cli import main

sys.exit(main())
