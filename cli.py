#!/usr/bin/env python3
"""``python cli.py ...`` from a checkout: the same command line as the installed ``ser``
(``pipeline.cli``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pipeline.cli import cli  # noqa: E402

if __name__ == "__main__":
    cli()
