"""Subcommands beyond the foundation (train, evaluate, score, serve), registered with the CLI."""

from __future__ import annotations

import argparse
from collections.abc import Callable

REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = []
