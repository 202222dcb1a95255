"""``python -m autoid_client``."""

import sys

from .cli import main

sys.exit(main())
