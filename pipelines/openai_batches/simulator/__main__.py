"""``python -m openai_batches.simulator``: same as ``openai-batches simulate``."""

import sys

from .cli import serve

sys.exit(serve())
