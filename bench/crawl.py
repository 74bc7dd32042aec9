"""Crawl benchmark: Clearance's crawler against bare tuned Scrapy, on one local site, one run.

    .venv/bin/python -m bench.crawl [--pages 2000] [--runs 3] [--signals on|off|both]

Generates a synthetic site (:mod:`bench.site`), serves it on 127.0.0.1 (nginx when installed,
else :mod:`crawler.demo.server` in this process), then times, each in a child process with a
timeout: bare Scrapy (:mod:`bench.bare_spider`) following links only and following links plus
images, and ``clearance crawl --json`` with the opt-out signals on and/or off. Offline; nothing
but 127.0.0.1 is contacted.

How figures are measured:

- pages and images are counted by the *server* (its access log) while the child runs, so both
  crawlers are counted the same way; robots.txt and other policy files count separately.
- ``pages/s`` = pages / wall time of the child process, with nothing subtracted: interpreter
  start, imports, config loading and writing the run's Parquet files are inside it.
- ``crawl pages/s`` uses each tool's own spider-open-to-close time (Scrapy's
  ``elapsed_time_seconds``; run.json ``timings.crawl_s``), for comparison.
- With ``--runs K`` every row is the median of K runs (each metric separately).
- Ratios divide Clearance's pages/s by bare Scrapy's; bare "+images" is the like-for-like
  baseline, since Clearance downloads the images too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.site import BenchSite, generate_bench_site
from crawler.demo.config import settings_dict, source_dict, write_config_dir
from crawler.demo.server import LocalServer
from pipeline.registry.config import SignalSwitches

BENCH_DIR = Path(__file__).resolve().parent
POLICY_PATHS = ("/robots.txt", "/ai.txt", "/.well-known/")


class BenchError(RuntimeError):
    """A crawler or server under test failed; the message carries what it printed."""


# --------------------------------------------------------------------------- servers


@dataclass
class Hits:
    """Requests the server saw, by kind."""

    pages: int = 0
    images: int = 0
    policy: int = 0
    other: int = 0
    errors: int = 0  # status >= 400 (404s for absent policy files included)

    def add(self, path: str, status: int) -> None:
        path = path.split("?", 1)[0]
        if path.startswith(POLICY_PATHS):
            self.policy += 1
        elif path.endswith(".html") or path == "/":
            self.pages += 1
        elif path.startswith("/img/"):
            self.images += 1
        else:
            self.other += 1
        if status >= 400:
            self.errors += 1


class SiteServer(Protocol):
    kind: str
    base_url: str

    def mark(self) -> int: ...

    def hits_since(self, mark: int) -> Hits: ...

    def stop(self) -> None: ...


class PythonServer:
    """The fallback: :class:`crawler.demo.server.LocalServer` in this process's threads."""

    kind = "python http.server (crawler.demo.server)"

    def __init__(self, root: Path) -> None:
        self._root = root
        self._server = LocalServer(root).start()
        self.base_url = self._server.base_url

    def mark(self) -> int:
        return len(self._server.requests)

    def hits_since(self, mark: int) -> Hits:
        hits = Hits()
        for record in self._server.requests.snapshot()[mark:]:
            # The access log has no status: a static site answers 404 exactly for absent files.
            relative = record.path.split("?", 1)[0].lstrip("/") or "index.html"
            hits.add(record.path, 200 if (self._root / relative).is_file() else 404)
        return hits

    def stop(self) -> None:
        self._server.stop()


NGINX_CONF = """\
worker_processes 1;
daemon off;
{user}pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{
        text/html html; text/plain txt; image/png png; image/jpeg jpg; application/json json;
    }}
    default_type application/octet-stream;
    log_format bench '$request_method $request_uri $status';
    access_log {work}/access.log bench;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path {work}/tmp-body;
    proxy_temp_path {work}/tmp-proxy;
    fastcgi_temp_path {work}/tmp-fastcgi;
    uwsgi_temp_path {work}/tmp-uwsgi;
    scgi_temp_path {work}/tmp-scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        index index.html;
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, alive: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class NginxServer:
    """nginx as a child process: one worker, 127.0.0.1, a free port, access log per request."""

    def __init__(self, root: Path, workdir: Path, binary: str) -> None:
        self.work = workdir
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "access.log"
        version = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
        self.kind = (version.stderr.strip().split(":", 1)[-1].strip() or "nginx") + " (1 worker)"
        user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
        for _attempt in range(3):  # a free port can be taken between probe and bind
            port = _free_port()
            conf = self.work / "nginx.conf"
            conf.write_text(NGINX_CONF.format(user=user, work=self.work, port=port, root=root))
            self.proc = subprocess.Popen(
                [binary, "-p", str(self.work), "-c", str(conf), "-e", str(self.work / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if _wait_for_port(port, lambda: self.proc.poll() is None):
                self.base_url = f"http://127.0.0.1:{port}"
                return
            self.stop()
        errors = (self.work / "error.log").read_text(errors="replace")[-2000:]
        raise BenchError(f"nginx did not start:\n{errors}")

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def hits_since(self, mark: int) -> Hits:
        hits = Hits()
        with self.log.open("rb") as handle:
            handle.seek(mark)
            for line in handle.read().decode("utf-8", "replace").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[2].isdigit():
                    hits.add(parts[1], int(parts[2]))
        return hits

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_server(root: Path, workdir: Path, choice: str) -> SiteServer:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if choice == "nginx" and binary is None:
        raise BenchError("--server nginx: nginx is not installed")
    if choice in ("auto", "nginx") and binary is not None:
        return NginxServer(root, workdir / "nginx", binary)
    return PythonServer(root)


# --------------------------------------------------------------------------- measurements


@dataclass
class Measurement:
    name: str
    wall_s: float
    hits: Hits
    crawl_s: float | None = None  # the tool's own spider-open-to-close time
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def pages_per_s(self) -> float:
        return self.hits.pages / self.wall_s if self.wall_s else 0.0

    @property
    def images_per_s(self) -> float:
        return self.hits.images / self.wall_s if self.wall_s else 0.0

    @property
    def crawl_pages_per_s(self) -> float | None:
        return self.hits.pages / self.crawl_s if self.crawl_s else None


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _run_child(
    name: str, cmd: list[str], server: SiteServer, timeout: float
) -> tuple[subprocess.CompletedProcess[str], float, Hits]:
    mark = server.mark()
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        raise BenchError(f"{name}: timed out after {timeout:.0f}s\n{_tail(stderr or '')}") from None
    wall = time.monotonic() - started
    time.sleep(0.05)  # let the server finish logging the last responses
    return proc, wall, server.hits_since(mark)


def measure_bare(
    server: SiteServer, start_url: str, images: bool, concurrency: int, work: Path, timeout: float
) -> Measurement:
    name = "bare scrapy, links" + (" + images" if images else "")
    stats_path = work / f"bare-{'images' if images else 'links'}-stats.json"
    cmd = [sys.executable, str(BENCH_DIR / "bare_spider.py"), "--url", start_url]
    cmd += ["--out", str(stats_path), "--concurrency", str(concurrency)]
    if images:
        cmd.append("--images")
    proc, wall, hits = _run_child(name, cmd, server, timeout)
    if proc.returncode != 0 or not stats_path.exists():
        raise BenchError(f"{name}: exit {proc.returncode}\n{_tail(proc.stderr)}")
    stats = json.loads(stats_path.read_text())
    return Measurement(
        name,
        wall,
        hits,
        crawl_s=stats.get("elapsed_time_seconds"),
        detail={"response_received_count": stats.get("response_received_count")},
    )


def clearance_command() -> list[str]:
    script = Path(sys.executable).parent / "clearance"
    if script.exists():
        return [str(script)]
    found = shutil.which("clearance")
    return [found] if found else [sys.executable, "-m", "pipeline.cli"]


def write_bench_configs(config_dir: Path, start_url: str, base_url: str, signals: bool) -> Path:
    """One source covering the whole site, no delay, no page cap in reach, depth 100."""
    source = source_dict(
        "bench",
        [start_url],
        scope=[base_url + "/"],
        allow_private_network=True,
        licence={"default": "CC-BY-4.0"},
        crawl={"max_depth": 100, "download_delay": 0.0},
    )
    overrides: dict[str, Any] = {"limits": {"max_pages_per_source": 100_000}}
    if not signals:
        overrides["signals"] = {name: False for name in SignalSwitches.model_fields}
    return write_config_dir(config_dir, settings_dict(**overrides), [source])


def measure_clearance(
    server: SiteServer,
    start_url: str,
    signals: bool,
    concurrency: int,
    work: Path,
    run_index: int,
    timeout: float,
) -> Measurement:
    label = "on" if signals else "off"
    name = f"clearance, signals {label}"
    config = write_bench_configs(work / f"configs-{label}", start_url, server.base_url, signals)
    data = work / f"data-{label}-{run_index}"
    cmd = clearance_command() + ["--config", str(config), "--data", str(data)]
    cmd += ["crawl", "--json", "--no-progress", "--concurrency", str(concurrency)]
    proc, wall, hits = _run_child(name, cmd, server, timeout)
    if proc.returncode != 0:
        raise BenchError(
            f"{name}: `{' '.join(cmd)}` exited {proc.returncode}\n"
            f"--- stderr (tail) ---\n{_tail(proc.stderr)}\n--- stdout (tail) ---\n"
            f"{_tail(proc.stdout, 10)}"
        )
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(
            f"{name}: --json output is not JSON ({exc})\n{_tail(proc.stdout)}"
        ) from None
    run_json = data / "runs" / str(doc.get("run_id")) / "run.json"
    run = json.loads(run_json.read_text()) if run_json.exists() else doc
    timings = run.get("timings") or {}
    return Measurement(
        name,
        wall,
        hits,
        crawl_s=timings.get("crawl_s") or None,
        detail={
            "run_id": doc.get("run_id"),
            "counts": run.get("counts"),
            "timings": timings,
            "limits_hit": run.get("limits_hit"),
        },
    )


def median_of(runs: list[Measurement]) -> Measurement:
    """Each metric's median over the runs (a row may mix runs; K is small and odd by advice)."""
    if len(runs) == 1:
        return runs[0]

    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    crawl = [r.crawl_s for r in runs if r.crawl_s]
    hits = Hits(
        **{key: round(med([getattr(r.hits, key) for r in runs])) for key in asdict(runs[0].hits)}
    )
    return Measurement(
        runs[0].name,
        med([r.wall_s for r in runs]),
        hits,
        crawl_s=med(crawl) if crawl else None,
        detail={"runs": [asdict(r) | {"pages_per_s": r.pages_per_s} for r in runs]},
    )


# --------------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(rows: list[Measurement]) -> str:
    header = (
        "crawler",
        "wall s",
        "pages",
        "images",
        "policy",
        "pages/s",
        "images/s",
        "crawl s",
        "crawl pages/s",
    )
    lines = [header]
    for m in rows:
        lines.append(
            (
                m.name,
                _fmt(m.wall_s, 2),
                str(m.hits.pages),
                str(m.hits.images),
                str(m.hits.policy),
                _fmt(m.pages_per_s),
                _fmt(m.images_per_s),
                _fmt(m.crawl_s, 2),
                _fmt(m.crawl_pages_per_s),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def ratios(rows: dict[str, Measurement]) -> list[str]:
    out = []
    like = rows.get("bare scrapy, links + images")
    links = rows.get("bare scrapy, links")
    for label in ("on", "off"):
        ours = rows.get(f"clearance, signals {label}")
        if ours is None:
            continue
        for base in (like, links):
            if base is not None and base.pages_per_s:
                out.append(
                    f"clearance (signals {label}) / {base.name}: "
                    f"{ours.pages_per_s / base.pages_per_s:.2f} (pages/s, wall)"
                )
    on, off = rows.get("clearance, signals on"), rows.get("clearance, signals off")
    if on is not None and off is not None and off.pages_per_s:
        out.append(f"clearance signals on / off: {on.pages_per_s / off.pages_per_s:.2f}")
    return out


# --------------------------------------------------------------------------- main


def run_bench(args: argparse.Namespace, work: Path) -> int:
    site_root = args.site or work / "site"
    started = time.monotonic()
    site: BenchSite = generate_bench_site(site_root, args.pages)
    print(
        f"site: {site.pages} pages, {site.images} images, {site.links} links "
        f"(generated in {time.monotonic() - started:.1f}s)",
        flush=True,
    )
    server = start_server(site_root, work, args.server)
    print(f"server: {server.kind} at {server.base_url}", flush=True)
    start_url = server.base_url + "/index.html"
    # (row name, "bare" or "clearance", images for bare / signals for clearance)
    plan: list[tuple[str, str, bool]] = []
    if args.bare in ("links", "both"):
        plan.append(("bare scrapy, links", "bare", False))
    if args.bare in ("images", "both"):
        plan.append(("bare scrapy, links + images", "bare", True))
    for label in ["on", "off"] if args.signals == "both" else [args.signals]:
        plan.append((f"clearance, signals {label}", "clearance", label == "on"))

    def run(kind: str, flag: bool, k: int) -> Measurement:
        if kind == "bare":
            return measure_bare(server, start_url, flag, args.concurrency, work, args.timeout)
        return measure_clearance(server, start_url, flag, args.concurrency, work, k, args.timeout)

    results: dict[str, Measurement] = {}
    failures: list[str] = []
    try:
        for name, kind, flag in plan:
            runs: list[Measurement] = []
            for k in range(args.runs):
                try:
                    m = run(kind, flag, k)
                except BenchError as exc:
                    failures.append(str(exc))
                    print(f"FAILED {name} (run {k + 1}):\n{exc}", file=sys.stderr, flush=True)
                    break
                print(
                    f"  {name} run {k + 1}/{args.runs}: {m.hits.pages} pages, "
                    f"{m.hits.images} images in {m.wall_s:.2f}s",
                    flush=True,
                )
                if m.hits.pages < site.pages:
                    print(
                        f"  warning: {name} fetched {m.hits.pages} of {site.pages} pages",
                        flush=True,
                    )
                runs.append(m)
            if runs and len(runs) == args.runs:
                results[name] = median_of(runs)
    finally:
        server.stop()

    print()
    median = f"median of {args.runs} runs" if args.runs > 1 else "1 run"
    print(f"concurrency {args.concurrency}; {median}; pages/s = pages / child wall time")
    print(table(list(results.values())))
    for line in ratios(results):
        print(line)
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "site": {"pages": site.pages, "images": site.images, "links": site.links},
                    "server": server.kind,
                    "concurrency": args.concurrency,
                    "runs": args.runs,
                    "results": {
                        name: asdict(m)
                        | {"pages_per_s": m.pages_per_s, "images_per_s": m.images_per_s}
                        for name, m in results.items()
                    },
                    "ratios": ratios(results),
                    "failures": failures,
                },
                indent=2,
                default=str,
            )
        )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Clearance crawl throughput vs bare tuned Scrapy on a local synthetic site."
    )
    parser.add_argument("--pages", type=int, default=2000, help="pages in the site (>= 1)")
    parser.add_argument("--runs", type=int, default=1, help="runs per crawler; report medians")
    parser.add_argument(
        "--signals",
        choices=["on", "off", "both"],
        default="on",
        help="Clearance's opt-out signals (both: also print on/off ratio)",
    )
    parser.add_argument(
        "--bare",
        choices=["links", "images", "both"],
        default="both",
        help="bare Scrapy variants to measure",
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per crawl")
    parser.add_argument("--site", type=Path, help="generate the site here (default: temp dir)")
    parser.add_argument("--workdir", type=Path, help="keep configs, data, logs here")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.pages < 1 or args.runs < 1:
        parser.error("--pages and --runs must be >= 1")
    try:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return run_bench(args, args.workdir.resolve())
        with tempfile.TemporaryDirectory(prefix="clearance-bench-") as tmp:
            return run_bench(args, Path(tmp))
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
