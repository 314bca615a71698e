"""``python -m clip_assets.cli``: the same as the ``clip-assets`` command."""

import sys

from clip_assets.cli import main

sys.exit(main())
