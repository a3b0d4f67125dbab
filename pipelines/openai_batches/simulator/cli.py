"""``openai-batches simulate``: run the simulator as a standalone server (demo, benchmarks)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType

from ..cli.argtypes import number_in
from . import others
from .clock import SimClock
from .faults import DEFAULT_RANDOM_FAULTS, FAULT_KINDS
from .flavors import AZURE_QUIRKS
from .org import DEFAULT_PROJECTS, SimulatedOrg
from .server import SimulatorServer
from .workload import USAGE_CUTOFF

# The Anthropic workspace `simulate` serves (API key -> workspace id).
ANTHROPIC_WORKSPACE = {"sk-ant-api03-sim-default": "wrkspc_sim_default"}
# The Groq organisation and Azure OpenAI resource `simulate --groq-batches/--azure-batches` serve: a project each
# of the simulated organisation, read through the flavour's paths and key header (flavors.py). Keys of the shape
# each provider's keys have (`gsk_...`; Azure's 32 hex digits), so the loader takes them as that provider's.
GROQ_SIM = ("gsk_simdefault00000000000000000000000000000000000000000", "proj_groq")
AZURE_SIM = ("0a2f5e0000000000000000000000517e", "proj_azure")
# The Together, Mistral and OpenRouter accounts `simulate --together-batches/--mistral-batches/--openrouter-batches`
# serve (others.py, under their own path prefixes), with keys of each provider's shape.
OTHER_SIMS = {
    "together": ("tgp_v1_simdefault0000000000000000000000", "proj_together"),
    "mistral": ("MistralSimDefault000000000000000000", "proj_mistral"),
    "openrouter": ("sk-or-v1-simdefault000000000000000000000000", "proj_openrouter"),
}


def parse_projects(spec: str) -> dict[str, str]:
    """``"3"`` -> three projects; ``"alpha,beta"`` -> named ones; ``"1"`` -> the default key/project.

    Keys are ``sk-sim-<name>`` and projects ``proj_<name>``, so a key says which project it reads.
    """
    spec = spec.strip()
    if spec.isdigit():
        count = int(spec)
        if count < 1:
            raise ValueError("--projects must be >= 1")
        if count == 1:
            return dict(DEFAULT_PROJECTS)
        return {f"sk-sim-{i}": f"proj_sim_{i}" for i in range(1, count + 1)}
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise ValueError("--projects: give a count or a comma separated list of names")
    out: dict[str, str] = {}
    for name in names:
        short = name.removeprefix("proj_")
        out[f"sk-sim-{short}"] = f"proj_{short}"
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="openai-batches simulate",
        description="Serve a simulated OpenAI Batches API (GET /v1/batches, GET /v1/batches/{id}), the batches' "
        "files (GET /v1/files/{id} and /v1/files/{id}/content), the Admin API (projects, usage, costs) and Anthropic's "
        "Message Batches (GET /v1/messages/batches, /{id}, /{id}/results) over HTTP.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port, 0 for any free one (default %(default)s)")
    p.add_argument(
        "--batches",
        type=number_in(int, 0),
        default=2000,
        help="batches of history, split evenly over the projects (default %(default)s)",
    )
    p.add_argument(
        "--days",
        type=float,
        default=None,
        help="history span in days (default: 120, or longer so it straddles 2025-09-07)",
    )
    p.add_argument("--open-fraction", type=float, default=None, help="share of the history forced to be still open now")
    p.add_argument("--seed", type=int, default=0, help="makes the generated history reproducible (default %(default)s)")
    p.add_argument(
        "--projects", default="1", help="number of projects, or a comma separated list of names (default %(default)s)"
    )
    p.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="time the server takes to answer each request, rendering included (default %(default)s)",
    )
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default %(default)s)")
    p.add_argument(
        "--arrival-rate", type=float, default=0.0, help="new batches per hour and project (default %(default)s)"
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="fraction of requests that get a random fault (default %(default)s)",
    )
    p.add_argument(
        "--fault-kinds",
        default=",".join(DEFAULT_RANDOM_FAULTS),
        help=f"comma separated, among {', '.join(FAULT_KINDS)} (default %(default)s)",
    )
    p.add_argument(
        "--repeat-usage-buckets",
        type=number_in(int, 0),
        default=0,
        help="Admin API: start every usage page but the first with the previous page's last N buckets again "
        "(default %(default)s)",
    )
    p.add_argument("--empty-usage", action="store_true", help="Admin API: serve every usage bucket with no results")
    p.add_argument(
        "--admin",
        action="store_true",
        help="also serve /_sim/stats, /_sim/advance and /_sim/create (benchmarks drive the clock with them; "
        "create takes create_batch overrides as query parameters, e.g. endpoint=/v1/embeddings&output_bytes=N)",
    )
    p.add_argument(
        "--anthropic-batches",
        type=number_in(int, 0),
        default=500,
        help="Anthropic Message Batches of history in one workspace (GET /v1/messages/batches, its results); "
        "0 serves no Anthropic API (default %(default)s)",
    )
    p.add_argument(
        "--groq-batches",
        type=number_in(int, 0),
        default=0,
        help="batches of history of a Groq organisation (GET /openai/v1/batches with a gsk_ key: no has_more); "
        "0 serves none (default %(default)s)",
    )
    p.add_argument(
        "--groq-paging",
        choices=("honours", "ignores"),
        default="honours",
        help="whether the Groq list honours limit/after (unconfirmed on the real API; default %(default)s)",
    )
    p.add_argument(
        "--azure-batches",
        type=number_in(int, 0),
        default=0,
        help="batches of history of an Azure OpenAI resource (api-key header; /openai/v1/batches and "
        "/openai/batches?api-version=...); 0 serves none (default %(default)s)",
    )
    p.add_argument(
        "--azure-quirks",
        default=",".join(sorted(AZURE_QUIRKS)),
        help=f"comma separated, among {', '.join(sorted(AZURE_QUIRKS))}, or empty for OpenAI's shape "
        "(default %(default)s)",
    )
    for provider in OTHER_SIMS:
        p.add_argument(
            f"--{provider}-batches",
            type=number_in(int, 0),
            default=0,
            help=f"batches of history of a {provider.capitalize()} account ({others.PREFIXES[provider]}/...); "
            "0 serves none (default %(default)s)",
        )
    p.add_argument(
        "--gzip",
        action="store_true",
        help="gzip every answer to a client that accepts it, file contents as they stream (as Cloudflare does)",
    )
    return p


def _print_anthropic(server: SimulatorServer, org: SimulatedOrg, workspaces: dict[str, str], batches: int) -> None:
    print(f"ANTHROPIC_BASE_URL={server.anthropic_base_url}")
    for key, workspace in workspaces.items():
        print(f"ANTHROPIC_API_KEY={key}  # {workspace}, {batches} message batches")
    for key in sorted(org.anthropic_books.admin_keys):
        print(f"ANTHROPIC_ADMIN_KEY={key}  # Admin API only (/v1/organizations/...)")


def _add_flavored(org: SimulatedOrg, args: argparse.Namespace, days: float) -> list[str]:
    """The Groq and Azure projects asked for, with their history; the lines that say how to read them."""
    lines = []
    for (key, project), count, label in (
        (GROQ_SIM, args.groq_batches, "GROQ"),
        (AZURE_SIM, args.azure_batches, "AZURE_OPENAI"),
    ):
        if count:
            org.add_project(project, name=project, api_key=key)
            org.generate_history(count, project=project, days=min(days, 60.0), open_fraction=args.open_fraction)
            lines.append(f"{label}_API_KEY={key}  # {project}, {count} batches")
    for provider, (key, project) in OTHER_SIMS.items():
        if count := getattr(args, f"{provider}_batches"):
            org.add_project(project, name=project, api_key=key)
            org.generate_history(count, project=project, days=min(days, 60.0), open_fraction=args.open_fraction)
            lines.append(f"{provider.upper()}_API_KEY={key}  # {project}, {count} batches")
    return lines


def _print_flavored(server: SimulatorServer, lines: list[str]) -> None:
    root = server.base_url.removesuffix("/v1")  # the groq SDK's root, and an Azure resource's endpoint
    for line in lines:
        label = line.split("_API_KEY=", 1)[0]
        if label in ("GROQ", "AZURE_OPENAI"):
            print(f"{'GROQ_BASE_URL' if label == 'GROQ' else 'AZURE_OPENAI_ENDPOINT'}={root}")
        else:  # the API root with its version path, as the provider's SDK takes it
            print(f"{label}_BASE_URL={root}{others.PREFIXES[label.lower()]}")
        print(line)


def serve(argv: list[str] | None = None) -> int:
    """The `openai-batches simulate` command: serve until Ctrl-C (or SIGTERM), return 0.

    The history uses a real-time clock (``--speed`` accelerates it), so open batches progress while
    it runs. Once listening it prints, flushed, in this order (scripts and benchmarks parse it)::

        Simulated N batches over D days in S s (seed X, P project(s)).
        OPENAI_BASE_URL=http://127.0.0.1:8000/v1
        OPENAI_API_KEY=sk-sim-default  # proj_default        (one line per key)
        OPENAI_ADMIN_KEY=sk-admin-sim  # Admin API only       (one line per admin key)
        ANTHROPIC_BASE_URL=http://127.0.0.1:8000               (unless --anthropic-batches 0)
        ANTHROPIC_API_KEY=sk-ant-api03-sim-default  # wrkspc_sim_default, N message batches
        ANTHROPIC_ADMIN_KEY=sk-ant-admin01-sim  # Admin API only
        GROQ_BASE_URL=http://127.0.0.1:8000                    (with --groq-batches N)
        GROQ_API_KEY=gsk_simdefault...  # proj_groq, N batches
        AZURE_OPENAI_ENDPOINT=http://127.0.0.1:8000            (with --azure-batches N)
        AZURE_OPENAI_API_KEY=0a2f5e...  # proj_azure, N batches
        TOGETHER_BASE_URL=http://127.0.0.1:8000/together/v1    (with --together-batches N; MISTRAL_, OPENROUTER_ alike)
        TOGETHER_API_KEY=tgp_v1_simdefault...  # proj_together, N batches
        Simulator keys only: ...
    """
    args = build_parser().parse_args(argv)
    try:
        projects = parse_projects(args.projects)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kinds = tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip())
    quirks = frozenset(q.strip() for q in args.azure_quirks.split(",") if q.strip())
    if quirks - AZURE_QUIRKS:
        print(f"error: --azure-quirks: unknown {', '.join(sorted(quirks - AZURE_QUIRKS))}", file=sys.stderr)
        return 2
    clock = SimClock(realtime=True, speed=args.speed)
    days = args.days
    if days is None:
        # The demo should show both pre-cutoff rows (no usage/model) and post-cutoff ones.
        days = max(120.0, (clock.now() - USAGE_CUTOFF) / 86_400 + 60)
    anthropic = ANTHROPIC_WORKSPACE if args.anthropic_batches else {}
    org = SimulatedOrg(projects=projects, clock=clock, seed=args.seed, anthropic_workspaces=anthropic)
    t0 = time.perf_counter()
    try:
        org.generate_history(args.batches, days=days, open_fraction=args.open_fraction)
        if anthropic:
            org.anthropic.generate_history(args.anthropic_batches, days=60)
        flavored = _add_flavored(org, args, days)
    except KeyboardInterrupt:
        return 130  # interrupted before serving anything
    gen_s = time.perf_counter() - t0
    if args.arrival_rate > 0:
        org.set_arrival_rate(args.arrival_rate)
    org.books.repeat_usage_buckets(args.repeat_usage_buckets)
    org.books.serve_empty_usage(args.empty_usage)
    try:
        server = SimulatorServer(
            org,
            host=args.host,
            port=args.port,
            latency=args.latency_ms / 1000.0,
            fault_rate=args.fault_rate,
            fault_kinds=kinds,
            fault_seed=args.seed,
            admin=args.admin,
            compress=args.gzip,
            groq_paging=args.groq_paging,
            azure_quirks=quirks,
        ).start()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def _on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_term)

    print(
        f"Simulated {args.batches} batches over {days:.0f} days in {gen_s:.2f} s "
        f"(seed {args.seed}, {len(set(projects.values()))} project(s))."
    )
    print(f"OPENAI_BASE_URL={server.base_url}")
    for key, project in projects.items():
        print(f"OPENAI_API_KEY={key}  # {project}")
    for key in sorted(org.admin_keys):
        print(f"OPENAI_ADMIN_KEY={key}  # Admin API only (/v1/organization/...)")
    if anthropic:
        _print_anthropic(server, org, anthropic, args.anthropic_batches)
    _print_flavored(server, flavored)
    print("Simulator keys only: they are not secrets. Press Ctrl-C to stop.", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
