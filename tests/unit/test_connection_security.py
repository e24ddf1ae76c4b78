"""The broker-connection settings map to the same security on both clients: kafka-python (CLI, ingest,
admin) via Settings.kafka_python_config() and aiokafka (the Faust worker) via streams.app._credentials."""
from __future__ import annotations

import ssl

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.app import _credentials
from streams.settings import Settings

SCRAM = dict(sasl_mechanism="SCRAM-SHA-512", sasl_username="svc", sasl_password="pw")


def test_environment_names():
    s = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                           "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "pw", "KAFKA_SSL_CAFILE": "/ca.pem"})
    assert (s.security_protocol, s.sasl_mechanism, s.sasl_username, s.sasl_password, s.ssl_cafile) == \
        ("SASL_SSL", "SCRAM-SHA-512", "svc", "pw", "/ca.pem")
    assert "pw" not in repr(s)


def test_plaintext_is_the_default_and_has_no_credentials():
    s = Settings(bootstrap_servers="a:1,b:2")
    assert s.kafka_python_config() == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "PLAINTEXT"}
    assert _credentials(s) is None


def test_sasl_plaintext_scram_on_both_clients():
    s = Settings(security_protocol="sasl_plaintext", **SCRAM)
    assert s.kafka_python_config() == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "SASL_PLAINTEXT",
                                       "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "svc",
                                       "sasl_plain_password": "pw"}
    auth = credentials_to_aiokafka_auth(_credentials(s))
    assert auth == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": "svc", "sasl_plain_password": "pw", "ssl_context": None}


def test_sasl_ssl_verifies_the_broker_certificate(tmp_path):
    s = Settings(security_protocol="SASL_SSL", **SCRAM)
    conf = s.kafka_python_config()
    assert conf["security_protocol"] == "SASL_SSL" and "ssl_cafile" not in conf  # the system's CAs
    auth = credentials_to_aiokafka_auth(_credentials(s))
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    context = auth["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_ssl_only():
    s = Settings(security_protocol="SSL", **SCRAM)  # a SASL mechanism next to SSL is ignored, as kafka-python does
    assert s.kafka_python_config() == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "SSL"}
    credentials = _credentials(s)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"


def test_ca_file_is_used_only_with_tls(tmp_path):
    assert "ssl_cafile" not in Settings(ssl_cafile="/ca.pem").kafka_python_config()
    assert Settings(security_protocol="SSL", ssl_cafile="/ca.pem").kafka_python_config()["ssl_cafile"] == "/ca.pem"
    with pytest.raises(FileNotFoundError):  # the worker fails at start-up on a wrong path, not later
        _credentials(Settings(security_protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem")))


@pytest.mark.parametrize("missing", ["sasl_mechanism", "sasl_username", "sasl_password"])
def test_incomplete_sasl_settings_fail_early(missing):
    s = Settings(security_protocol="SASL_PLAINTEXT", **(SCRAM | {missing: None}))
    with pytest.raises(ValueError, match=f"KAFKA_{missing.upper()}"):
        _credentials(s)


def test_unknown_protocol_fails_early():
    with pytest.raises(ValueError, match="expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"):
        _credentials(Settings(security_protocol="TLS"))
