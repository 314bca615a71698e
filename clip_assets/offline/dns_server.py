"""A real DNS server on 127.0.0.1 (UDP) that answers scripted names, for tests and benchmarks.

Reads a mapping ``name -> addresses`` (IPv4 go out as A records, IPv6 as AAAA); serves it from a
background thread until the ``with`` block ends; writes nothing to disk. A name not in the zone
gets NXDOMAIN with an SOA whose minimum is ``negative_ttl`` (RFC 2308); a name in the zone
without an address of the asked family gets an empty answer with that SOA. Names in
``servfail`` get SERVFAIL, names in ``silent`` get no answer at all (a timeout), and
``fail_share`` of all other queries (seeded random) get ``fail_with`` ("servfail" or
"silent"). Guarantees: every query received is counted in ``queries[(name, type)]`` before it
is answered; ``set`` changes a name's answer at once (what a rebinding attacker does).
"""

from __future__ import annotations

import ipaddress
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Mapping

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

_SOA = "ns.test. hostmaster.test. 1 3600 600 86400 {minimum}"


class DnsServer:
    """``with DnsServer({"a.test": ["127.0.0.1"]}) as dns: dns.address`` is ``"127.0.0.1:PORT"``,
    the form ``DownloadSettings.dns_servers`` takes."""

    def __init__(
        self,
        zone: Mapping[str, Iterable[str]] | None = None,
        *,
        ttl: int = 300,
        negative_ttl: int = 300,
        servfail: Iterable[str] = (),
        silent: Iterable[str] = (),
        fail_share: float = 0.0,
        fail_with: str = "servfail",
        seed: int = 0,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.servfail = {_key(n) for n in servfail}
        self.silent = {_key(n) for n in silent}
        self.fail_share = fail_share
        self.fail_with = fail_with
        self.queries: Counter[tuple[str, str]] = Counter()
        self._zone: dict[str, list[str]] = {}
        for name, addresses in (zone or {}).items():
            self.set(name, addresses)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None, "server not started"
        return self._socket.getsockname()[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, name: str, addresses: Iterable[str]) -> None:
        """Answers ``name`` with ``addresses`` from now on (an empty list: no address)."""
        self._zone[_key(name)] = list(addresses)

    def asked(self, name: str) -> int:
        """Queries received for ``name``, all types together."""
        key = _key(name)
        with self._lock:
            return sum(n for (asked, _), n in self.queries.items() if asked == key)

    def start(self) -> DnsServer:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._socket is not None
        while not self._stop.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self._answer(data)
            if reply is not None:
                self._socket.sendto(reply, peer)

    def _answer(self, data: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
            question = query.question[0]
        except (dns.exception.DNSException, IndexError):
            return None
        name = _key(question.name.to_text())
        kind = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries[(name, kind)] += 1
            unlucky = self._random.random() < self.fail_share
        failure = self.fail_with if unlucky else None
        if name in self.servfail:
            failure = "servfail"
        if name in self.silent:
            failure = "silent"
        if failure == "silent":
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if failure == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        addresses = self._zone.get(name)
        if addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        family = 4 if question.rdtype == dns.rdatatype.A else 6
        matching = [a for a in addresses or () if ipaddress.ip_address(a).version == family]
        if matching and question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            response.answer.append(
                dns.rrset.from_text(question.name, self.ttl, "IN", kind, *matching)
            )
        else:
            soa = _SOA.format(minimum=self.negative_ttl)
            response.authority.append(
                dns.rrset.from_text(
                    dns.name.from_text("test."), self.negative_ttl, "IN", "SOA", soa
                )
            )
        return response.to_wire()


def _key(name: str) -> str:
    return name.lower().rstrip(".")
