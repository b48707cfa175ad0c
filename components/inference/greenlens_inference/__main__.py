"""``python -m greenlens_inference``: see greenlens_inference.main."""

import sys

from .main import main

sys.exit(main())
