"""All configuration, read from the environment in exactly one place (agents never read it)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from streams.redaction import redact_in_logs

REPO = Path(__file__).resolve().parent.parent


def _flag(value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {value!r}")


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "posvenda"
    topic_prefix: str = ""
    partitions: int = 4
    data_dir: Path = REPO / ".state" / "worker"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    api_token: str | None = field(default=None, repr=False)  # when set, HTTP projections require "Authorization: Bearer <token>"
    # at_least_once + idempotent folds, not faust's exactly_once: see README "Reliability" for why.
    allow_open_http: bool = False  # serve the views without a token on a non-loopback address
    processing_guarantee: str = "at_least_once"
    recovery_tick_seconds: float = 5.0  # wall-clock ticks for idle partitions' recovery watermark; 0 = off
    business_timezone: str = "America/Sao_Paulo"  # days of the funnel and reports are local days
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str | None = None  # e.g. SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    @classmethod
    def from_env(cls, env=os.environ) -> Settings:
        def get(name, default, cast=str):
            value = env.get(name)
            return default if value in (None, "") else cast(value)

        return cls(
            bootstrap_servers=get("KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            app_id=get("POSVENDA_APP_ID", cls.app_id),
            topic_prefix=get("POSVENDA_TOPIC_PREFIX", cls.topic_prefix),
            partitions=get("POSVENDA_PARTITIONS", cls.partitions, int),
            data_dir=get("POSVENDA_DATA_DIR", cls.data_dir, Path),
            web_host=get("POSVENDA_WEB_HOST", cls.web_host),
            web_port=get("POSVENDA_WEB_PORT", cls.web_port, int),
            api_token=get("POSVENDA_API_TOKEN", None),
            allow_open_http=get("POSVENDA_ALLOW_OPEN_HTTP", cls.allow_open_http, _flag),
            processing_guarantee=get("POSVENDA_PROCESSING_GUARANTEE", cls.processing_guarantee),
            recovery_tick_seconds=get("POSVENDA_RECOVERY_TICK_SECONDS", cls.recovery_tick_seconds, float),
            business_timezone=get("POSVENDA_TIMEZONE", cls.business_timezone),
            security_protocol=get("KAFKA_SECURITY_PROTOCOL", cls.security_protocol),
            sasl_mechanism=get("KAFKA_SASL_MECHANISM", None),
            sasl_username=get("KAFKA_SASL_USERNAME", None),
            sasl_password=get("KAFKA_SASL_PASSWORD", None),
            ssl_cafile=get("KAFKA_SSL_CAFILE", None),
        )

    def topic_name(self, topic) -> str:
        return f"{self.topic_prefix}{topic.name}"

    def kafka_python_config(self) -> dict:
        """Connection settings for kafka-python clients (admin, producer, consumer).

        The SASL password is registered with the log redactor here, where it enters a client config."""
        protocol = self.security_protocol.upper()
        conf = {"bootstrap_servers": self.bootstrap_servers.split(","), "security_protocol": protocol}
        if protocol.startswith("SASL_") and self.sasl_mechanism:  # only read for SASL protocols
            conf.update(sasl_mechanism=self.sasl_mechanism.upper(), sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password)
            redact_in_logs(self.sasl_password)
        if protocol in ("SSL", "SASL_SSL") and self.ssl_cafile:  # else the system's CAs
            conf["ssl_cafile"] = self.ssl_cafile
        return conf
