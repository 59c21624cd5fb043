"""Training throughput: our training step against a bare timm step, same model, batch and AMP (issue 5).

Usage: python benchmarks/train_throughput.py --help
"""

import sys

from simpool.train.throughput import main

if __name__ == "__main__":
    sys.exit(main())
