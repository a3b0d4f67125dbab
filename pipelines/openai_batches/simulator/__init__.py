"""A faithful local implementation of OpenAI's batch list/retrieve API, for the demo, tests and benchmarks.

``SimulatedOrg`` holds the batches (lifecycle driven by a ``SimClock``), ``SimulatorServer`` serves
them over real HTTP with OpenAI's envelope, errors, headers and injectable ``Fault``s, and ``serve``
is the ``openai-batches simulate`` command.
"""

from .cli import serve
from .clock import SimClock
from .org import SimulatedOrg
from .server import DEFAULT_RANDOM_FAULTS, FAULT_KINDS, Fault, RequestRecord, SimulatorServer
from .workload import USAGE_CUTOFF

__all__ = [
    "DEFAULT_RANDOM_FAULTS",
    "FAULT_KINDS",
    "USAGE_CUTOFF",
    "Fault",
    "RequestRecord",
    "SimClock",
    "SimulatedOrg",
    "SimulatorServer",
    "serve",
]
