"""Runner (b): a Quix Streams peer doing the order path (per-order timeline in its RocksDB state,
group_by customer, per-customer state, a result topic).

`python -m benchmarks.quix_peer --prefix P --group G --state-dir D`, with quixstreams importable
(`make bench` installs the `bench` extra into .state/bench-lib and puts it on this process's path
only: quixstreams brings orjson, and Faust silently switches its JSON codec to orjson when it can
import it, which would change the posvenda worker being measured). Runs until terminated.
"""
from __future__ import annotations

import argparse

from quixstreams import Application
from quixstreams.models.serializers import Deserializer

from benchmarks.order_path import fold_customer, fold_timeline, order_fact
from topics import events


class OrderFact(Deserializer):
    """Decodes a posvenda Avro order event into the order path's fact."""

    def __call__(self, value: bytes, ctx) -> dict:
        return order_fact(events.decode(value))


def fold_order_state(fact: dict, state) -> dict | None:
    timeline = fold_timeline(state.get("timeline"), fact)
    if timeline is None:
        return None
    state.set("timeline", timeline)
    return fact


def fold_customer_state(fact: dict, state) -> dict:
    record = fold_customer(state.get("record"), [fact])
    state.set("record", record)
    return record


def build(bootstrap: str, prefix: str, group: str, state_dir: str) -> Application:
    app = Application(broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
                      state_dir=state_dir, processing_guarantee="at-least-once", loglevel="WARNING")
    source = app.topic(prefix + "orders.events", key_deserializer="str", value_deserializer=OrderFact())
    result = app.topic(prefix + "quix.customers", key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.apply(fold_order_state, stateful=True).filter(lambda fact: fact is not None)
    sdf = sdf.group_by(lambda fact: fact["customer_id"], name="customer")
    sdf = sdf.apply(fold_customer_state, stateful=True)
    sdf.to_topic(result)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    build(args.bootstrap, args.prefix, args.group, args.state_dir).run()


if __name__ == "__main__":
    main()
