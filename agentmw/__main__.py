"""`python -m agentmw`: the `agentmw` command line."""

import sys

from agentmw.cli import main

if __name__ == "__main__":
    sys.exit(main())
