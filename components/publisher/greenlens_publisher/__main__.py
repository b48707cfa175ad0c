"""``python -m greenlens_publisher``: see greenlens_publisher.main."""

import sys

from .main import main

sys.exit(main())
