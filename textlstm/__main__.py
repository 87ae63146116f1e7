"""`python -m textlstm` runs the command line."""

import sys

from textlstm.cli import main

sys.exit(main())
