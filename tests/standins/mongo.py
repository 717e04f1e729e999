"""A MongoDB stand-in speaking the real wire protocol (OP_MSG), enough for a ping.

MongoDB cannot be installed here (it is not in Debian). This server answers the
handshake (``hello``/``isMaster``), ``ping`` and ``endSessions`` the way mongod does,
with BSON from pymongo's own ``bson`` package, so a real pymongo client talks to it.
"""

from __future__ import annotations

import asyncio
import datetime
import struct
import threading
from typing import Any

import bson

OP_MSG = 2013
_HEADER = struct.Struct("<iiii")


class MongoStandIn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.commands: list[str] = []
        self.silent = False  # accept connections but never answer
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def start(self) -> None:
        async def up() -> None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

        asyncio.run_coroutine_threadsafe(up(), self._loop).result(5)

    def stop(self) -> None:
        async def down() -> None:
            if self._server is not None:
                self._server.close()
                for writer in list(self._writers):  # drop live connections, as a crash would
                    writer.close()
                await self._server.wait_closed()
                self._server = None

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(5)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _reply(self, command: dict[str, Any]) -> dict[str, Any]:
        name = next(iter(command))
        self.commands.append(name)
        if name in ("hello", "isMaster", "ismaster"):
            return {
                "helloOk": True,
                "ismaster": True,
                "isWritablePrimary": True,
                "maxBsonObjectSize": 16 * 1024 * 1024,
                "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000,
                "localTime": datetime.datetime.now(datetime.UTC),
                "logicalSessionTimeoutMinutes": 30,
                "connectionId": 1,
                "minWireVersion": 0,
                "maxWireVersion": 21,
                "readOnly": False,
                "ok": 1.0,
            }
        if name in ("ping", "endSessions"):
            return {"ok": 1.0}
        return {
            "ok": 0.0,
            "errmsg": f"no such command: '{name}'",
            "code": 59,
            "codeName": "CommandNotFound",
        }

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(16)
                length, request_id, _, opcode = _HEADER.unpack(header)
                body = await reader.readexactly(length - 16)
                if opcode != OP_MSG:
                    return
                if self.silent:
                    continue
                # flagBits, then sections; kind 0 holds the command document
                offset, command = 4, None
                while offset < len(body):
                    kind = body[offset]
                    offset += 1
                    size = struct.unpack_from("<i", body, offset)[0]
                    if kind == 0:
                        command = bson.decode(body[offset : offset + size])
                    offset += size
                if command is None:
                    return
                payload = struct.pack("<i", 0) + b"\x00" + bson.encode(self._reply(command))
                writer.write(
                    _HEADER.pack(16 + len(payload), request_id + 1, request_id, OP_MSG) + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
