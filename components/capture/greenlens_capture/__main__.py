"""``python -m greenlens_capture``: see greenlens_capture.main."""

import sys

from .main import main

sys.exit(main())
