"""``python -m simpool.cli ...`` (what ``torchrun -m simpool.cli train ...`` runs)."""

import sys

from .main import main

sys.exit(main())
