"""Runner (a), the ceiling: aiokafka consume + fastavro decode of the source events, nothing else.

Run as its own process (`python -m benchmarks.ceiling --topics A,B --expected N`) so its CPU and
peak RSS are its own; prints one JSON line. Timed from the first message received to the last.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from aiokafka import AIOKafkaConsumer

from benchmarks.procstat import memory_kb
from topics import events


async def consume(bootstrap: str, topics: list[str], expected: int) -> dict:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        n, started, cpu_started = 0, None, None
        while n < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batches.values():
                if started is None:
                    started, cpu_started = time.perf_counter(), time.process_time()
                for message in messages:
                    events.decode(message.value)
                n += len(messages)
        return {"events": n, "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started,
                "peak_rss_kb": memory_kb(os.getpid())}
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topics", required=True, help="comma-separated physical topic names")
    parser.add_argument("--expected", type=int, required=True)
    args = parser.parse_args()
    result = asyncio.run(consume(args.bootstrap, args.topics.split(","), args.expected))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
