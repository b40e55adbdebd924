"""Model calls spread over several httpx clients, each with a bounded number in flight, against a
real HTTP server on loopback whose answers stay open until the test lets them finish."""

from __future__ import annotations

import asyncio

import httpx

from plugdeck.models.clients import ClientShards


async def held_open_server(release: asyncio.Event):
    """Answers every request with its headers and a first chunk, and ends the body only on `release`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (line := await reader.readline()).strip():
                method_line = line
                headers = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", 0)))
                assert method_line.startswith(b"POST")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n")
                await writer.drain()
                await release.wait()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"


async def test_calls_beyond_a_client_s_share_open_another_client_and_leases_come_back():
    release = asyncio.Event()
    server, url = await held_open_server(release)
    shards = ClientShards(per_client=2)
    try:
        responses = [await shards.send("POST", url, json={"n": i}) for i in range(5)]
        assert [r.status_code for r in responses] == [200] * 5
        assert len(shards.clients) == 3 and shards.in_flight == [2, 2, 1]
        release.set()
        for response in responses:
            assert await response.aread() == b"hello"
            await shards.close(response)
        assert shards.in_flight == [0, 0, 0]
        again = await shards.send("POST", url, json={})  # an idle client is reused, not a new one made
        await again.aread()
        await shards.close(again)
        assert len(shards.clients) == 3 and shards.in_flight == [0, 0, 0]
    finally:
        await shards.aclose()
        server.close()
        await server.wait_closed()


async def test_a_failed_send_gives_its_lease_back():
    shards = ClientShards(per_client=2)
    try:
        for _ in range(3):
            try:
                await shards.send("POST", "http://127.0.0.1:9/v1/chat/completions", json={})
            except httpx.ConnectError:
                pass
        assert shards.in_flight == [0] and len(shards.clients) == 1
    finally:
        await shards.aclose()


async def test_a_client_of_the_caller_s_is_the_only_one_used():
    release = asyncio.Event()
    release.set()
    server, url = await held_open_server(release)
    own = httpx.AsyncClient()
    shards = ClientShards(per_client=1 << 30, make=lambda: own)
    try:
        responses = [await shards.send("POST", url, json={}) for _ in range(3)]
        assert shards.clients == [own] and shards.in_flight == [3]
        for response in responses:
            await shards.close(response)
    finally:
        await own.aclose()
        server.close()
        await server.wait_closed()
