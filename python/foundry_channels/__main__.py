"""`python -m foundry_channels COMMAND ...` (also the `foundry-channels` console script)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
