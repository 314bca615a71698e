"""The web as it is, on loopback: failing DNS, dead hosts, robots.txt; ours vs img2dataset.

``--hosts`` hostnames ``hNNN.web.test`` get ``--urls-per-host`` URLs each on average (1 to 3x
that, seeded). Every name is answered by a DNS server this script starts on 127.0.0.1, which
fails ``--dns-fail`` of all queries with SERVFAIL; the same names go into /etc/hosts while the
script runs (it must run as root; the file is restored in a ``finally``) for the tools that can
only use the system resolver. Hosts are, by seeded draw: dead (``--dead``, half "silent": a
listener at 127.0.0.2 that accepts and never answers, half "refused": nothing listening at
127.0.0.3), or alive with ``--latency`` per request (127.0.0.1), ``--robots`` of the alive ones
with a robots.txt disallowing ``/private/`` (127.0.0.5, where a third of their URLs live). All
listeners share one port and run in a child process, which also counts what reaches them.

Each tool run reports: URLs ok out of those that can succeed (alive host, and for us not
disallowed by robots.txt), opted out, wall time and CPU seconds of the tool's process tree (the
figure other work on the machine distorts least), connections the silent hosts accepted (each
one a timeout waited out), lookups (queries our DNS server received; our own count of lookups
and the cache hit rate). Ours runs with its defaults (every run: 2 workers, our DNS server), then
without the breaker, without robots.txt, without both (img2dataset's behaviour), and with the
system resolver; img2dataset with its defaults (timeout 10 s, no retries) at ``--i2d-threads``.

    sudo .venv/bin/python benchmarks/bench_web.py --hosts 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import _harness as h
import pyarrow.parquet as pq

ADDRESSES = {"alive": "127.0.0.1", "silent": "127.0.0.2", "refused": "127.0.0.3"}
ROBOTS_ADDRESS = "127.0.0.5"
ROBOTS = b"User-agent: *\nDisallow: /private/\n"
HOSTS_FILE = Path("/etc/hosts")


@dataclass(frozen=True)
class Web:
    """The simulated web: each host's kind and each URL's host and path."""

    kinds: dict[str, str]  # host -> alive, robots, silent, refused
    urls: list[tuple[str, str]]  # (host, path)

    def can_succeed(self, host: str, path: str, robots: bool) -> bool:
        kind = self.kinds[host]
        return kind == "alive" or (kind == "robots" and not (robots and "/private/" in path))


def make_web(args: argparse.Namespace, pool_size: int) -> Web:
    rng = random.Random(args.seed)
    kinds, urls = {}, []
    for i in range(args.hosts):
        host = f"h{i:03d}.web.test"
        draw = rng.random()
        if draw < args.dead / 2:
            kinds[host] = "silent"
        elif draw < args.dead:
            kinds[host] = "refused"
        else:
            kinds[host] = "robots" if rng.random() < args.robots else "alive"
        for _ in range(rng.randint(1, max(1, args.urls_per_host * 2 - 1))):
            n = len(urls)
            private = kinds[host] == "robots" and rng.random() < 1 / 3
            urls.append((host, f"/{'private' if private else 'img'}/{n}/{n % pool_size:06d}.jpg"))
    return Web(kinds, urls)


def address_of(kind: str) -> str:
    return ROBOTS_ADDRESS if kind == "robots" else ADDRESSES.get(kind, ADDRESSES["alive"])


# --- the servers (child process) -----------------------------------------------------------------


def serve(pool: Path, latency_s: float) -> None:
    """Alive hosts, robots hosts and silent hosts on one port; prints it, serves until SIGTERM.
    ``GET /__counts`` on 127.0.0.1 answers the silent listener's accepted connections."""
    from clip_assets.offline.image_server import ImageServer, image

    class AnyPrefix(dict):
        def get(self, path: str, default: object = None) -> object:
            if path in self:
                return super().get(path)
            return super().get(path.rsplit("/", 1)[-1], default)

    files = {f.name: image(f.read_bytes()) for f in sorted(pool.glob("*.jpg"))}
    silent = socket.create_server((ADDRESSES["silent"], 0), backlog=4096)
    port = silent.getsockname()[1]
    held: list[socket.socket] = []

    def accept_and_hold() -> None:
        while True:
            conn, _ = silent.accept()
            held.append(conn)  # never read from, never answered, never closed

    threading.Thread(target=accept_and_hold, daemon=True).start()
    counts = AnyPrefix(files)
    servers = [
        ImageServer(latency_s=latency_s, port=port, address=address)
        for address in (ADDRESSES["alive"], ROBOTS_ADDRESS)
    ]
    servers[0].routes = counts
    servers[1].routes = AnyPrefix({**files, "/robots.txt": image(ROBOTS, "text/plain")})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for server in servers:
        server.start()

    def refresh() -> None:  # the count, as a route replaced every 50 ms

        while not stop.wait(0.05):
            body = json.dumps({"silent_connections": len(held)}).encode()
            counts["/__counts"] = image(body, "application/json")

    threading.Thread(target=refresh, daemon=True).start()
    print(port, flush=True)
    stop.wait()
    for server in servers:
        server.stop()


class Servers:
    """The child process of ``serve``; ``silent_connections()`` reads its count."""

    def __init__(self, pool: Path, latency_s: float) -> None:
        command = [str(h.OUR_PYTHON), __file__, "serve", str(pool), str(latency_s)]
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())

    def silent_connections(self) -> int:
        import httpx

        time.sleep(0.1)  # let the counter catch up
        url = f"http://127.0.0.1:{self.port}/__counts"
        return int(httpx.get(url, trust_env=False).json()["silent_connections"])

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


# --- the tools -----------------------------------------------------------------------------------


@dataclass
class Result:
    tool: str
    config: str
    ok: int
    can_succeed: int
    opted_out: int
    wall_s: float
    cpu_s: float
    silent_connections: int
    dns_queries: int
    lookups: str

    def row(self) -> list[object]:
        return [
            self.tool,
            self.config,
            f"{self.ok}/{self.can_succeed}",
            f"{self.ok / self.can_succeed:.1%}",
            self.opted_out,
            f"{self.wall_s:.1f}",
            f"{self.cpu_s:.1f}",
            self.silent_connections,
            self.dns_queries,
            self.lookups,
        ]


HEADER = [
    "tool",
    "config",
    "ok / can succeed",
    "rate",
    "opted out",
    "wall s",
    "CPU s",
    "silent-host conns",
    "DNS queries",
    "our lookups (hit rate)",
]


def run_ours(urls: Path, out: Path, settings: dict) -> tuple[dict, h.Measured]:
    command = [str(h.OUR_PYTHON), str(Path(__file__).with_name("_run_ours.py")), "download"]
    measured = h.run_measured([*command, str(urls), str(out), json.dumps(settings)])
    return h.last_json(measured.stdout), measured


def run_img2dataset(urls: Path, out: Path, threads: int) -> tuple[list[str], h.Measured]:
    command = [
        str(h.PEERS_PYTHON.with_name("img2dataset")),
        f"--url_list={urls}",
        "--input_format=parquet",
        "--url_col=url",
        f"--output_folder={out}",
        "--output_format=parquet",
        "--processes_count=2",
        f"--thread_count={threads}",
        "--number_sample_per_shard=500",
        "--image_size=256",
        "--resize_mode=keep_ratio",
        "--encode_format=jpg",
        "--encode_quality=95",
    ]
    measured = h.run_measured(command)
    ok_urls = []
    for part in out.glob("*.parquet"):
        table = pq.read_table(part, columns=["url", "status"])
        ok_urls += [u for u, s in zip(*table.to_pydict().values(), strict=True) if s == "success"]
    return ok_urls, measured


def with_hosts_file(web: Web):
    """A context manager adding every name to /etc/hosts and restoring the file after."""

    class Hosts:
        def __enter__(self) -> None:
            self.original = HOSTS_FILE.read_bytes()
            lines = [f"{address_of(kind)} {host}" for host, kind in web.kinds.items()]
            HOSTS_FILE.write_bytes(self.original + ("\n".join(lines) + "\n").encode())

        def __exit__(self, *exc: object) -> None:
            HOSTS_FILE.write_bytes(self.original)

    return Hosts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=300)
    parser.add_argument("--urls-per-host", type=int, default=8)
    parser.add_argument("--dead", type=float, default=0.2, help="share of hosts that are dead")
    parser.add_argument("--robots", type=float, default=0.15, help="share of alive hosts")
    parser.add_argument("--dns-fail", type=float, default=0.2, help="share of DNS queries failed")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--i2d-threads", type=int, default=64)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument(
        "--configs",
        default="defaults,no-breaker,no-robots,no-breaker-no-robots,system-resolver",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark adds its names to /etc/hosts (and restores it)")
    from clip_assets.offline.dns_server import DnsServer

    pool = h.image_pool(args.pool)
    web = make_web(args, args.pool)
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    zone = {host: [address_of(kind)] for host, kind in web.kinds.items()}
    servers = Servers(pool, args.latency)
    results: list[Result] = []
    try:
        with DnsServer(zone, fail_share=args.dns_fail) as dns, with_hosts_file(web):
            url_of = {
                (host, path): f"http://{host}:{servers.port}{path}" for host, path in web.urls
            }
            url_list = work / "urls.parquet"
            h.write_url_list(url_list, list(url_of.values()), pool)
            base = {
                "dns_servers": [dns.address],
                "allow_private_addresses": True,  # the simulated web lives at 127.0.0.x
                "workers": 2,
            }
            variants = {
                "defaults": {},
                "no-breaker": {"host_failure_limit": 0},
                "no-robots": {"respect_robots_txt": False},
                "no-breaker-no-robots": {"host_failure_limit": 0, "respect_robots_txt": False},
                "system-resolver": {"resolver": "system", "dns_servers": []},
            }
            for name in args.configs.split(","):
                settings = {**base, **variants[name]}
                robots = settings.get("respect_robots_txt", True)
                can = sum(web.can_succeed(host, path, robots) for host, path in web.urls)
                before_conn, before_q = servers.silent_connections(), sum(dns.queries.values())
                report, measured = run_ours(url_list, work / f"ours-{name}.parquet", settings)
                hit_rate = report["dns_cache_hit_rate"]
                results.append(
                    Result(
                        "clip-assets",
                        name,
                        report["ok"],
                        can,
                        report["opted_out"],
                        measured.wall_s,
                        measured.cpu_s,
                        servers.silent_connections() - before_conn,
                        sum(dns.queries.values()) - before_q,
                        f"{report['dns_lookups']} ({hit_rate:.0%})",
                    )
                )
                print(h.table([results[-1].row()], HEADER).splitlines()[-1], flush=True)
                print(f"  reasons: {report['reasons']}", flush=True)
            if not args.skip_peer:
                before_conn = servers.silent_connections()
                out = work / "img2dataset"
                ok_urls, measured = run_img2dataset(url_list, out, args.i2d_threads)
                can = sum(web.can_succeed(host, path, False) for host, path in web.urls)
                results.append(
                    Result(
                        "img2dataset",
                        f"processes=2 threads={args.i2d_threads} /etc/hosts",
                        len(ok_urls),
                        can,
                        0,
                        measured.wall_s,
                        measured.cpu_s,
                        servers.silent_connections() - before_conn,
                        0,
                        "system resolver",
                    )
                )
                print(h.table([results[-1].row()], HEADER).splitlines()[-1], flush=True)
    finally:
        servers.close()
    kinds = [web.kinds[host] for host, _ in web.urls]
    print(
        f"\n{args.hosts} hosts, {len(web.urls)} URLs: "
        + ", ".join(f"{k} {kinds.count(k)} URLs" for k in ("alive", "robots", "silent", "refused"))
        + f" (silent hosts {list(web.kinds.values()).count('silent')}); DNS fails "
        f"{args.dns_fail:.0%} of queries; latency {args.latency * 1000:.0f} ms"
    )
    print(h.table([r.row() for r in results], HEADER))
    shutil.rmtree(work)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(Path(sys.argv[2]), float(sys.argv[3]))
    else:
        main()
