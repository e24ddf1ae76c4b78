"""Campaign rendering and delivery without Kafka: Portuguese templates, BRL amounts, deterministic
message_sent events, an outbox that skips what it already delivered, a log without personal data."""
import json
import logging
from types import SimpleNamespace

import pytest

from alerts import campaigns, recovery_rules
from topics import codec, events

DUE = 1_741_834_799_000  # 2025-03-12T23:59:59-03:00
ACTION = {"action_id": "ch-1:last_call", "type": "send_last_call", "step": "last_call", "charge_id": "ch-1",
          "order_id": "o-77", "customer_id": "c-9", "method": "boleto", "amount": 1234.56, "due_at": DUE,
          "scheduled_at": DUE - 14 * 3_600_000, "channels": ["email", "whatsapp"]}


@pytest.mark.parametrize("amount, text", [(1234.56, "R$ 1.234,56"), (0.5, "R$ 0,50"), (1234567.891, "R$ 1.234.567,89"),
                                          (99.999, "R$ 100,00"), (7, "R$ 7,00")])
def test_brl_format(amount, text):
    assert campaigns.format_brl(amount) == text


def test_every_template_renders_in_portuguese_with_the_order_amount_and_due_date():
    templates = campaigns.Templates()
    rules = recovery_rules.load()
    for steps in rules.methods.values():
        for step in steps:
            for channel in step.channels:
                text = templates.render({**ACTION, "type": step.action}, channel)
                assert "o-77" in text and "R$ 1.234,56" in text and "12/03/2025" in text, (step.action, channel)
                assert "$" not in text.replace("R$", "")
    pix = templates.render({**ACTION, "type": "send_pix_reminder"}, "whatsapp")
    assert "23:59" in pix and "Pix" in pix


def test_a_missing_template_is_a_clear_error_naming_the_action(tmp_path):
    with pytest.raises(campaigns.TemplateError, match=r"action 'ch-1:last_call': no template for type "
                                                      r"'send_last_call' on channel 'sms'"):
        campaigns.Templates(tmp_path).render(ACTION, "sms")


def test_a_crafted_action_type_cannot_read_another_file(tmp_path):
    # Given a templates directory and, beside it, another .txt file an action type could point at
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "send_last_call.email.txt").write_text("Pedido $order_id")
    (tmp_path / "secret.email.txt").write_text("SECRET $order_id")
    templates = campaigns.Templates(tmp_path / "templates")
    # When actions name a path as their type / Then they are refused by id, and nothing is read
    for crafted in ("../secret", "../../x", "/etc/passwd", "send_last_call.email.txt/.."):
        with pytest.raises(campaigns.TemplateError, match=r"action 'ch-1:last_call': no template for type"):
            templates.render({**ACTION, "type": crafted}, "email")
    with pytest.raises(campaigns.TemplateError, match="no template"):
        templates.render(ACTION, "../secret")  # nor as a channel
    assert templates.render(ACTION, "email") == "Pedido o-77\n"


def test_an_order_id_cannot_smuggle_a_line_or_a_url_into_the_message():
    # Given an order id carrying a line break and a URL, and one carrying control characters
    templates = campaigns.Templates()
    plain = templates.render(ACTION, "email")
    for order_id, shown in (("o-77\nhttp://evil", "o-77http:evil"), ("o-77\r\n\x1b[31m\u2028x y", "o-7731mxy")):
        # When it is rendered in every template
        text = templates.render({**ACTION, "order_id": order_id}, "email")
        # Then the id shows without them: no new line, no URL, no control character
        assert text == plain.replace("o-77", shown)
        assert "http://" not in text and not any(line.startswith("http") for line in text.splitlines())
        assert not [ch for ch in text if ch != "\n" and (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch == "\u2028")]
    assert len(campaigns.safe_id("x" * 500)) == campaigns.MAX_ID_CHARS


@pytest.mark.parametrize("bad", [{"amount": float("nan")}, {"amount": float("inf")}, {"due_at": 10**20},
                                 {"channels": ["email", "sms"]}, {"type": "../../x"}])
def test_an_action_that_cannot_be_rendered_sends_nothing_on_any_channel(tmp_path, bad):
    # Given an action with a non-finite amount, an impossible due time, or a channel without template
    published = []
    run = campaigns.Campaign(campaigns.OutboxBackend(tmp_path / "outbox.jsonl"), published.append, campaigns.Templates())
    # When it is handled / Then it is refused naming the action, and nothing is delivered or logged as sent
    with pytest.raises(campaigns.TemplateError, match="action 'ch-1:last_call'"):
        run.handle({**ACTION, **bad})
    run.backend.close()
    assert (tmp_path / "outbox.jsonl").read_text() == "" and published == [] and run.delivered == 0


def test_a_template_with_an_unknown_placeholder_stops_the_start(tmp_path):
    (tmp_path / "send_last_call.email.txt").write_text("Olá $customer_name, pedido $order_id")
    with pytest.raises(campaigns.TemplateError, match="send_last_call.email.txt: unknown or malformed placeholder"):
        campaigns.Templates(tmp_path)


def test_message_sent_event_is_deterministic_and_valid():
    a = campaigns.message_sent_event(ACTION, "email", 1_741_800_000_000)
    b = campaigns.message_sent_event(ACTION, "email", 1_741_900_000_000)
    assert a.event_id == b.event_id != campaigns.message_sent_event(ACTION, "whatsapp", 0).event_id
    assert a.payload == {"channel": "email", "template": "send_last_call", "phase": "payment_recovery",
                         "action_id": "ch-1:last_call"}
    assert (a.order_id, a.customer_id, a.source) == ("o-77", "c-9", "crm")
    assert events.decode(events.encode(a)) == a


def test_outbox_delivers_each_action_and_channel_once(tmp_path):
    path = tmp_path / "outbox.jsonl"
    published = []
    run = campaigns.Campaign(campaigns.OutboxBackend(path), published.append, campaigns.Templates())
    run.handle(ACTION)
    run.backend.close()
    again = campaigns.Campaign(campaigns.OutboxBackend(path), published.append, campaigns.Templates())
    again.handle(ACTION)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["action_id"], e["channel"]) for e in lines] == [("ch-1:last_call", "email"), ("ch-1:last_call", "whatsapp")]
    assert "R$ 1.234,56" in lines[0]["text"] and lines[0]["template"] == "send_last_call"
    assert (run.delivered, again.delivered, again.skipped) == (2, 0, 2)
    # the audit event is published again (same id): a crash between delivery and publish loses nothing
    assert len(published) == 4 and len({e.event_id for e in published}) == 2


def test_log_backend_logs_ids_not_text_or_customer(caplog):
    caplog.set_level(logging.INFO, logger="alerts.campaigns")
    campaigns.Campaign(campaigns.LogBackend(), lambda e: None, campaigns.Templates()).handle(ACTION)
    logged = caplog.text
    assert "ch-1:last_call" in logged and "whatsapp" in logged
    assert "c-9" not in logged and "R$" not in logged


def test_the_consumer_skips_an_unrenderable_action_naming_it_and_goes_on(tmp_path, caplog):
    # Given a crafted action (its type a path) between two good ones, as recovery.actions records
    def record(offset, **changes):
        value = codec.encode("posvenda.recovery.RecoveryAction", {**ACTION, **changes})
        return SimpleNamespace(partition=0, offset=offset, value=value)

    records = [record(1, action_id="ch-1:a"), record(2, action_id="ch-2:b", type="../../x"), record(3, action_id="ch-3:c"),
               SimpleNamespace(partition=0, offset=4, value=b"not avro")]
    run = campaigns.Campaign(campaigns.OutboxBackend(tmp_path / "outbox.jsonl"), lambda e: None, campaigns.Templates())
    # When the consumer handles them
    handled = [campaigns.handle_record(run, r) for r in records]
    run.backend.close()
    # Then the crafted and the undecodable ones are skipped and named in the log, the others delivered
    assert handled == [True, False, True, False]
    delivered = {json.loads(line)["action_id"] for line in (tmp_path / "outbox.jsonl").read_text().splitlines()}
    assert delivered == {"ch-1:a", "ch-3:c"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "offset 2 skipped: action 'ch-2:b'" in errors[0] and "'../../x'" in errors[0]
    assert "offset 4 skipped" in errors[1]
