"""A faithful local implementation of OpenAI's batch list/retrieve API, for the demo, tests and benchmarks.

``SimulatedOrg`` holds the batches (lifecycle driven by a ``SimClock``), ``SimulatorServer`` serves
them over real HTTP with OpenAI's envelope, errors, headers and injectable ``Fault``s, and ``serve``
is the ``openai-batches simulate`` command. Every batch's input, output and error files are served
too (files.py), generated on the fly; ``SimulatedOrg.request_truth`` says what they contain.

May import: numpy, orjson, the standard library, `settings`, `load.memory` and `cli.argtypes` (its command
line). Never the clients, sources or storage: it stands for the real API, so it shares no code with them.
"""

from .batch_requests import CONTENT_MARKER, CONTENT_MARKER_NUMBER, CONTENT_MARKER_NUMBER_TEXT
from .cli import serve
from .clock import SimClock
from .faults import DEFAULT_RANDOM_FAULTS, FAULT_KINDS, Fault
from .files import FileInfo, RequestTruth
from .org import SimulatedOrg
from .server import RequestRecord, SimulatorServer
from .workload import USAGE_CUTOFF

__all__ = [
    "CONTENT_MARKER",
    "CONTENT_MARKER_NUMBER",
    "CONTENT_MARKER_NUMBER_TEXT",
    "DEFAULT_RANDOM_FAULTS",
    "FAULT_KINDS",
    "USAGE_CUTOFF",
    "Fault",
    "FileInfo",
    "RequestRecord",
    "RequestTruth",
    "SimClock",
    "SimulatedOrg",
    "SimulatorServer",
    "serve",
]
