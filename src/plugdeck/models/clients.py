"""HTTP clients for model calls that stay cheap at hundreds of calls at once.

httpcore's connection pool walks all of its connections, and for each idle one counts them all
again, whenever a request starts or ends: with 256 calls in flight that is most of the client's
CPU time (bench/agentbench at 256 concurrent tasks). So calls are spread over several httpx
clients, each holding at most `per_client` of them; another client is opened only when every one
is full, so a process making a few calls at a time uses one client and reuses its connections.
"""

from __future__ import annotations

from typing import Callable

import httpx

PER_CLIENT = 32  # calls in flight per client: the pool's own bookkeeping stays small


def new_client(per_client: int = PER_CLIENT) -> httpx.AsyncClient:
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=per_client))


class ClientShards:
    def __init__(self, per_client: int = PER_CLIENT, make: Callable[[], httpx.AsyncClient] | None = None):
        self.per_client = per_client
        self._make = make or (lambda: new_client(per_client))
        self.clients: list[httpx.AsyncClient] = []
        self.in_flight: list[int] = []
        self._leases: dict[int, int] = {}  # id(response) -> its client's index, until the response is closed

    async def send(self, method: str, url: str, **request: object) -> httpx.Response:
        """Send on the least busy client (a new one if all are full); the response streams, and must
        be given back with `close(response)`."""
        index = self._choose()
        client = self.clients[index]
        self.in_flight[index] += 1
        try:
            response = await client.send(client.build_request(method, url, **request), stream=True)
        except BaseException:
            self.in_flight[index] -= 1
            raise
        self._leases[id(response)] = index
        return response

    async def close(self, response: httpx.Response) -> None:
        try:
            await response.aclose()
        finally:
            index = self._leases.pop(id(response), None)
            if index is not None:
                self.in_flight[index] -= 1

    async def aclose(self) -> None:
        clients, self.clients, self.in_flight = self.clients, [], []
        for client in clients:
            await client.aclose()

    def _choose(self) -> int:
        if self.clients:
            index = min(range(len(self.clients)), key=self.in_flight.__getitem__)
            if self.in_flight[index] < self.per_client:
                return index
        self.clients.append(self._make())
        self.in_flight.append(0)
        return len(self.clients) - 1
