import sys

from babelmap.cli import main

sys.exit(main())
