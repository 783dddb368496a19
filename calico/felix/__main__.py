"""`python -m calico.felix`: the same as the `calico-felix` command."""

import sys

from calico.felix.daemon import main

sys.exit(main())
