"""``bench/run.py``, kept so that the commands recorded in docs/performance.md still run: the bench is the
package ``bench`` (``python -m bench``, what ``make bench`` runs)."""

import sys
from pathlib import Path

if __name__ == "__main__":
    # the project directory, not bench/, first on the path: bench's modules are imported as ``bench.*`` only
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from bench.cli import main

    raise SystemExit(main())
