"""Operator commands for the Plane app backend: ``python manage.py --help``."""

import sys

from workers.commands import main

if __name__ == "__main__":
    sys.exit(main())
