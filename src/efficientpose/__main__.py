"""``python -m efficientpose``: the ``efficientpose`` command."""

import sys

from efficientpose.entry import main

sys.exit(main())
