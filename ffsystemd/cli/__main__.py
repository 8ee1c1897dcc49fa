"""`python -m ffsystemd.cli`: the `ffsystemd` command."""

import sys

from . import main

sys.exit(main())
