"""What a Kafka cluster that refuses the CLI actually said, for its one-line error.

kafka-python 3.0.12 can lose the broker's answer to a failed SASL authentication: the broker sends
the error response and closes the connection, and when both arrive in one read, kafka-python's
transport (kafka/net/transport.py, `_sock_recv`) drops the bytes read with the end of stream. The
operator is left with "socket disconnected" and "Unable to bootstrap". aiokafka, the worker's
client, reads that response reliably, so after a failed connection the CLI asks it once, with the
same settings, and quotes the broker. Only on the error path: a healthy run never gets here.
"""
from __future__ import annotations

import asyncio
import logging
import ssl

PROBE_TIMEOUT_SECONDS = 15


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _bootstrap(settings) -> str | None:
    from aiokafka.client import AIOKafkaClient

    # the CLI's own connection settings: aiokafka takes the same names, but a context for the CA file
    options = settings.kafka_python_config()
    cafile = options.pop("ssl_cafile", None)
    if options["security_protocol"] in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=cafile)
    client = AIOKafkaClient(request_timeout_ms=PROBE_TIMEOUT_SECONDS * 1000, **options)
    try:
        await asyncio.wait_for(client.bootstrap(), PROBE_TIMEOUT_SECONDS)
        return None
    finally:
        await client.close()


def broker_refusal(settings) -> str | None:
    """The broker's own reason for refusing these settings (e.g. "[Error 58] SaslAuthenticationFailed:
    Authentication failed ... invalid credentials ..."), or None when it gave none or now accepts us."""
    collect = _Collect()
    aiokafka_log = logging.getLogger("aiokafka")
    aiokafka_log.addHandler(collect)
    previous, aiokafka_log.propagate = aiokafka_log.propagate, False  # quoted once, not logged twice
    try:
        asyncio.run(_bootstrap(settings))
    except Exception as exc:
        collect.messages.append(f"{type(exc).__name__}: {exc}")
    finally:
        aiokafka_log.removeHandler(collect)
        aiokafka_log.propagate = previous
    said = [m for m in collect.messages if "[Error " in m or "SSL" in m or "CERTIFICATE" in m]
    return said[0].split(": ", 1)[-1] if said else None
