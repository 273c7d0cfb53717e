import sys

from equivar.cli import main

sys.exit(main())
