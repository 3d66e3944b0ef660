"""A TCP proxy on a loopback port that delays everything the client sends by a fixed time, like
a network round trip added to every store RPC. Delays are pipelined (each chunk leaves ``delay``
after it arrived, in order), so concurrent requests overlap as they would on a real network."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class DelayProxy:
    def __init__(self, target: str, delay_s: float) -> None:
        host, _, port = target.removeprefix("http://").rstrip("/").rpartition(":")
        self.target = (host, int(port))
        self.delay_s = delay_s
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        with contextlib.suppress(asyncio.CancelledError):  # the proxy is stopping
            await asyncio.gather(self._pipe(reader, up_w, self.delay_s), self._pipe(up_r, writer, 0.0))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()

        sender = asyncio.ensure_future(forward())
        with contextlib.suppress(OSError, ConnectionError):
            while data := await src.read(65536):
                queue.put_nowait((time.monotonic() + delay, data))
        queue.put_nowait((0.0, b""))
        with contextlib.suppress(OSError, ConnectionError):
            await sender
            dst.close()

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
