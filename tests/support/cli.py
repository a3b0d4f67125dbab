"""The CLI as cron runs it (its own process, a clean environment) and the simulator's command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


CLI = [sys.executable, "-m", "openai_batches.cli.main"]


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment (isolated dlt dirs) without any OPENAI_* or ANTHROPIC_* variable, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("OPENAI_", "ANTHROPIC_", "SOURCES__", "GROQ_", "AZURE_", "TOGETHER_", "MISTRAL_", "OPENROUTER_")
        )
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env or cli_env(), cwd=cwd or REPO, timeout=timeout
    )


def spawn_cli(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd or REPO,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_clear_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Exit `code`, no traceback anywhere, exactly one `error:` line on stderr containing `fragments`."""
    output = result.stdout + result.stderr
    assert result.returncode == code, (result.returncode, output)
    assert "Traceback" not in output, output
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


@contextmanager
def simulate_command(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`openai-batches simulate --port 0 ARGS` in its own process, with the lines it printed before serving."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "openai_batches.simulator", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("Simulator keys only"):
            lines.append(proc.stdout.readline())
            assert lines[-1], lines  # it ended before serving
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def printed(lines: list[str], name: str) -> list[str]:
    """The values of `NAME=value  # comment` lines."""
    return [line.split("=", 1)[1].split()[0] for line in lines if line.startswith(f"{name}=")]
