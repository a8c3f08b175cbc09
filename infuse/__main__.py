"""`python -m infuse` (also what `torchrun -m infuse` runs)."""

import sys

from infuse.cli import main

sys.exit(main())
