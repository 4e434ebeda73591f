"""C{python -m portsuite.cli}: the C{portsuite} command."""

import sys

from portsuite.cli import main

sys.exit(main())
