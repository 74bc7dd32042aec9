"""Output for people, as a script or a person copies it: long paths, pipes and narrow terminals.

The rule (DESIGN.md, "Details the contract fixes"): a printed path or URL is never wrapped
across lines, in a terminal or a pipe. These helpers make a long directory, run a command with
its output in a real pseudo-terminal of a given width, and pick out the printed paths.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

# CSI (colours, cursor moves, erase) and OSC (titles, links) sequences a terminal consumes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]")


def long_dir(tmp_path: Path, length: int = 150) -> Path:
    """A not yet existing directory under ``tmp_path`` whose absolute path is ``length`` chars."""
    base = str(tmp_path.resolve()) + "/"
    pad = length - len(base)
    assert 20 < pad < 250, f"tmp_path too long for a {length}-character directory: {base}"
    name = ("long-folder-name-" * 20)[: pad - 1] + "d"
    path = Path(base + name)
    assert len(str(path)) == length
    return path


def printed_paths(text: str, prefix: Path) -> list[str]:
    """Every whitespace-separated token that starts with ``prefix``, as printed."""
    start = str(prefix)
    return [token for line in text.splitlines() for token in line.split()
            if token.startswith(start)]


def missing_paths(text: str, prefix: Path) -> list[str]:
    """The printed paths under ``prefix`` that do not exist as printed."""
    return [p for p in printed_paths(text, prefix) if not Path(p).exists()]


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def piped_env(columns: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return env


def run_in_terminal(cmd: list[str], columns: int, timeout: float = 120) -> tuple[int, str]:
    """Run ``cmd`` with stdin, stdout and stderr on a pseudo-terminal ``columns`` wide.

    Returns the exit code and what the terminal received, escape sequences removed and
    carriage returns read as line ends (what a person sees, less the terminal's own folding).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = piped_env()
    env.update(TERM="xterm-256color")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                            close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = _ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))
    return code, text.replace("\r\n", "\n").replace("\r", "\n")
