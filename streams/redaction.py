"""Keeps secrets out of log lines written by the Kafka client libraries.

kafka-python's admin client logs its whole configuration at DEBUG, SASL password included, when it
starts; an application that turns DEBUG on for `kafka` (or the root logger) would write the password
to its log. The filter below replaces any registered secret with `***` in the records of the loggers
that print configurations, whoever configured the handlers.
"""
from __future__ import annotations

import logging

CONFIG_PRINTING_LOGGERS = ("kafka.admin.client", "kafka.client", "kafka.producer.kafka", "kafka.consumer.group",
                           "aiokafka", "aiokafka.conn", "faust")
MASK = "***"


class SecretRedactor(logging.Filter):
    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        hidden = message
        for secret in self.secrets:
            hidden = hidden.replace(secret, MASK)
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True


_redactor = SecretRedactor()


def redact_in_logs(*secrets: str | None) -> None:
    """Masks these values in every record of the loggers that print client configurations."""
    _redactor.secrets.update(s for s in secrets if s)
    for name in CONFIG_PRINTING_LOGGERS:
        logger = logging.getLogger(name)
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)
