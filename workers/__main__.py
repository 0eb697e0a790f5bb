"""``python -m workers``: run the worker pool (the Procfile's ``worker`` line)."""

import sys

from workers.pool import main

sys.exit(main())
