"""Creates and configures the Faust app; nothing else lives here.

Agents are in streams/<domain>.py, tables and their HTTP views in projections/<read_model>.py;
streams/worker.py imports them all before the worker starts.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from streams.redaction import redact_in_logs
from streams.settings import Settings
from streams.unit_of_work import BufferedTable, BufferedTopic
from streams.web_auth import auth_middleware, log_routes

settings = Settings.from_env()


def _credentials(s: Settings):
    """Faust broker credentials for `s.security_protocol` (None = PLAINTEXT).

    Chosen by the protocol, like kafka-python does with the same settings, so the worker and the CLI
    never disagree: a SASL mechanism set next to PLAINTEXT or SSL is ignored there too. Incomplete
    SASL settings fail here, at start-up, rather than as an opaque connection error later.
    """
    import ssl

    protocol = s.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=s.ssl_cafile) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        missing = [name for name, value in (("KAFKA_SASL_MECHANISM", s.sasl_mechanism),
                                            ("KAFKA_SASL_USERNAME", s.sasl_username),
                                            ("KAFKA_SASL_PASSWORD", s.sasl_password)) if not value]
        if missing:
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        return faust.SASLCredentials(username=s.sasl_username, password=s.sasl_password,
                                     mechanism=s.sasl_mechanism.upper(), ssl_context=context)
    raise ValueError(f"KAFKA_SECURITY_PROTOCOL={s.security_protocol}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")


class KeepBuffersOnResume(FlowControlEvent):
    """Flow control that empties the agents' buffers when flow is suspended, no longer when it resumes.

    At the end of a rebalance, Faust 0.15.3 (Recovery.on_recovery_completed) resumes the stream
    partitions, seeks them to the committed offsets, then resumes flow, and resuming emptied every
    agent buffer. Fetching goes on meanwhile (flow is active since the changelog recovery): a batch
    handed over across the seek moves the consumer's read offset past events that sit in a buffer, the
    resume drops them, and when fetched again they are skipped as already read. Under load a worker
    taking partitions lost such events for good (one customer's registration, one checkout step): the
    commit tolerates one missing offset at its head, so it passes over a single lost event.

    Resuming now keeps what the agents' buffers hold: events of the current assignment, processed like
    any other (an event of an earlier assignment is still skipped by the stream's generation check).
    Suspending for a rebalance or a shutdown still empties them (Faust calls clear() after suspend()),
    and the seek to the committed offsets that follows reads those events again. The queues named by
    `cleared_on_resume` (the table changelog queue: recovery is left as Faust has it) are emptied as before.
    """

    def __init__(self, *, cleared_on_resume: Callable[[], Iterable] = tuple, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cleared_on_resume = cleared_on_resume

    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()
        for queue in self.cleared_on_resume():
            queue.clear()


class PosvendaApp(faust.App):
    """faust.App whose web server carries only the project's views (see streams/web_auth.py), and whose
    flow control keeps the agents' buffers when flow resumes (see KeepBuffersOnResume)."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return KeepBuffersOnResume(loop=self.loop, cleared_on_resume=lambda: (self.tables.changelog_queue,))

    def _new_web(self):
        web = super()._new_web()
        web.production_blueprints = ()  # Faust's "/" status page: /health is the project's liveness route
        web.blueprints = type(web.blueprints)(web._enabled_blueprints())
        return web

    def on_webserver_init(self, web) -> None:
        log_routes(web.web_app)


def create_app(s: Settings) -> faust.App:
    redact_in_logs(s.sasl_password, s.api_token)
    return PosvendaApp(
        s.app_id,
        broker=";".join(f"kafka://{host}" for host in s.bootstrap_servers.split(",")),
        broker_credentials=_credentials(s),
        store="rocksdb://",  # rocksdict when installed; "rocksdict://" fails ("module object is not callable")
        datadir=str(s.data_dir),
        processing_guarantee=s.processing_guarantee,
        topic_partitions=s.partitions,
        topic_replication_factor=1,
        broker_session_timeout=10,  # a local worker is ready in ~5 s instead of ~30 s
        consumer_auto_offset_reset="earliest",
        web_host=s.web_host,
        web_bind=s.web_host,
        web_port=s.web_port,
        canonical_url=f"http://{s.web_host}:{s.web_port}",  # how peers reach this worker's views
        web_in_thread=False,
        web_application_options={"middlewares": [auth_middleware(s.api_token)]},  # every route, Faust's too
        web_tables_enabled=False,  # Faust's /table/<name>/<key>/ would serve customer records
        web_router_enabled=False,  # /router/ (cluster layout); views ask peers through app.router directly
        autodiscover=False,
        key_serializer="json",  # tables; catalogue topics are raw bytes (see topic())
        value_serializer="json",
        producer_acks=-1,
        stream_wait_empty=False,
        Table=BufferedTable,  # writes and reads go through the event's unit of work (streams/unit_of_work.py)
    )


app = create_app(settings)


@functools.cache
def topic(t) -> faust.TopicT:
    """The Faust topic of a catalogue entry (raw bytes: agents decode, so bad input reaches the DLQ).

    Cached: handlers send on every event, and building a Faust topic object each time was waste.
    A BufferedTopic: a send made while an event's unit of work is open leaves with the unit's commit."""
    return BufferedTopic(app, topics=[settings.topic_name(t)], key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw", partitions=t.partitions or settings.partitions)


def topics(*entries, **kwargs) -> faust.TopicT:
    """One Faust channel over several co-partitioned catalogue topics."""
    return app.topic(*(settings.topic_name(t) for t in entries), key_type=bytes, value_type=bytes,
                     key_serializer="raw", value_serializer="raw", partitions=settings.partitions, **kwargs)


def catalogue_entry(physical_name: str, candidates):
    """The catalogue topic a message came from, by its physical (prefixed) name."""
    for t in candidates:
        if settings.topic_name(t) == physical_name:
            return t
    raise KeyError(physical_name)


def assigned_partitions(t) -> frozenset[int]:
    """Partitions of a catalogue topic actively assigned to this worker (empty before assignment)."""
    name = settings.topic_name(t)
    try:
        return frozenset(tp.partition for tp in app.consumer.assignment() if tp.topic == name)
    except Exception:  # consumer not started yet
        return frozenset()
