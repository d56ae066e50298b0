"""`python -m devtools.status`."""

import sys

from devtools.status.cli import main

sys.exit(main())
