"""`python -m foundry_channels COMMAND ...` (also the `foundry-channels` console script)."""

import sys

from . import _interrupt

_interrupt.defer()  # before the CLI's own imports: Ctrl-C is acted on once they are done

from .cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
