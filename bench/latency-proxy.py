#!/usr/bin/env python3
"""A TCP proxy that adds a fixed delay to every request, to measure remote stores as if they
were far away (loopback S3 answers in well under a millisecond; a real bucket in 5-50 ms).

    bench/latency-proxy.py LISTEN_PORT TARGET_PORT DELAY_MS

Every chunk the client sends is forwarded DELAY_MS later (so each HTTP request pays the delay
once, a round trip's worth); answers flow back at once. Runs until killed.
"""
import asyncio
import sys


async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main(listen, target, delay):
    async def handle(cr, cw):
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, sw, delay), pipe(sr, cw, 0))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000))
