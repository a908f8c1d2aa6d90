"""``python -m bench``: run the ingest benchmark."""

import sys

from bench.cli import main

sys.exit(main())
