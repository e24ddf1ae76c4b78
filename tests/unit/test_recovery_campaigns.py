"""Campaign rendering and delivery without Kafka: Portuguese templates, BRL amounts, deterministic
message_sent events, an outbox that skips what it already delivered, a log without personal data."""
import json
import logging

import pytest

from alerts import campaigns, recovery_rules
from topics import events

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


def test_a_missing_template_is_a_clear_error(tmp_path):
    with pytest.raises(campaigns.TemplateError, match="send_last_call.sms.txt"):
        campaigns.Templates(tmp_path).render(ACTION, "sms")


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
