"""`posvenda dashboards push` against a stand-in Grafana (http.server on loopback) that checks what the
Grafana HTTP API expects: a bearer token, the folder, and POST /api/dashboards/db with the dashboard's
uid and overwrite true."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from posvenda import cli

REPO = Path(__file__).resolve().parents[2]
TOKEN = "glsa_test-token"
COMMITTED = {p.stem: json.loads(p.read_text()) for p in (REPO / "infra" / "grafana" / "dashboards").glob("*.json")}


class FakeGrafana(BaseHTTPRequestHandler):
    """Answers like Grafana 10/11 for the calls push makes; records every request."""

    server: Server

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((method, self.path, dict(self.headers), body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, {"message": "invalid API key"})
        if method == "GET" and self.path == "/api/folders/posvenda":
            if "posvenda" in self.server.folders:
                return self._reply(200, {"uid": "posvenda", "title": self.server.folders["posvenda"]})
            return self._reply(404, {"message": "folder not found"})
        if method == "POST" and self.path == "/api/folders":
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                return self._reply(415, {"message": "expected JSON"})
            self.server.folders[body["uid"]] = body["title"]
            return self._reply(200, {"uid": body["uid"], "title": body["title"]})
        if method == "POST" and self.path == "/api/dashboards/db":
            dashboard = body.get("dashboard") or {}
            if not dashboard.get("uid") or body.get("overwrite") is not True:
                return self._reply(400, {"message": "dashboard.uid and overwrite: true expected"})
            if body.get("folderUid") not in self.server.folders:
                return self._reply(400, {"message": "folder not found"})
            version = self.server.versions.get(dashboard["uid"], 0) + 1
            self.server.versions[dashboard["uid"]] = version
            return self._reply(200, {"id": version, "uid": dashboard["uid"], "status": "success",
                                     "url": f"/d/{dashboard['uid']}/x", "version": version})
        return self._reply(404, {"message": f"no route {method} {self.path}"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


class Server(ThreadingHTTPServer):
    requests: list
    folders: dict
    versions: dict


@pytest.fixture
def grafana():
    server = Server(("127.0.0.1", 0), FakeGrafana)
    server.requests, server.folders, server.versions = [], {}, {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url_of(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def dashboard_posts(server) -> list[dict]:
    return [body for method, path, _, body in server.requests if (method, path) == ("POST", "/api/dashboards/db")]


def test_push_creates_the_folder_and_saves_every_dashboard_with_overwrite(grafana, capsys):
    assert cli.main(["dashboards", "push", "--url", url_of(grafana), "--token", TOKEN]) == 0

    assert all(headers.get("Authorization") == f"Bearer {TOKEN}" for _, _, headers, _ in grafana.requests)
    assert [(m, p) for m, p, _, _ in grafana.requests[:2]] == [("GET", "/api/folders/posvenda"),
                                                             ("POST", "/api/folders")]
    assert grafana.folders == {"posvenda": "posvenda"}
    posts = dashboard_posts(grafana)
    assert sorted(b["dashboard"]["uid"] for b in posts) == sorted(COMMITTED)
    for body in posts:
        assert body["overwrite"] is True and body["folderUid"] == "posvenda"
        sent = body["dashboard"]
        assert sent["id"] is None
        assert {**sent, "id": COMMITTED[sent["uid"]]["id"]} == COMMITTED[sent["uid"]], "push sends the built JSON"
    out = capsys.readouterr().out
    assert out.count("pushed posvenda-") == 5 and "version 1" in out


def test_second_push_reuses_the_folder_and_updates_in_place(grafana, capsys):
    assert cli.main(["dashboards", "push", "--url", url_of(grafana), "--token", TOKEN]) == 0
    grafana.requests.clear()
    assert cli.main(["dashboards", "push", "--url", url_of(grafana), "--token", TOKEN]) == 0
    assert ("POST", "/api/folders") not in [(m, p) for m, p, _, _ in grafana.requests]
    assert set(grafana.versions.values()) == {2}
    assert "version 2" in capsys.readouterr().out


def test_push_reads_url_and_token_from_the_environment(grafana, monkeypatch):
    monkeypatch.setenv("GRAFANA_URL", url_of(grafana))
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    assert cli.main(["dashboards", "push"]) == 0
    assert len(dashboard_posts(grafana)) == 5


def test_push_can_point_panels_at_another_datasource(grafana):
    assert cli.main(["dashboards", "push", "--url", url_of(grafana), "--token", TOKEN,
                     "--datasource-uid", "their-prom"]) == 0
    for body in dashboard_posts(grafana):
        text = json.dumps(body["dashboard"])
        assert "posvenda-prometheus" not in text and '"uid": "their-prom"' in text


def test_wrong_token_fails_with_one_line_and_exit_1(grafana, capsys):
    assert cli.main(["dashboards", "push", "--url", url_of(grafana), "--token", "wrong"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HTTP 401" in err[0]
    assert dashboard_posts(grafana) == []


def test_missing_url_or_token_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert cli.main(["dashboards", "push", "--url", "http://127.0.0.1:9"]) == 2
    assert "GRAFANA_TOKEN" in capsys.readouterr().err


def test_unreachable_grafana_fails_with_exit_1(capsys):
    from tests.conftest import free_port

    assert cli.main(["dashboards", "push", "--url", f"http://127.0.0.1:{free_port()}", "--token", TOKEN,
                     "--timeout", "2"]) == 1
    assert "posvenda dashboards push: http://127.0.0.1:" in capsys.readouterr().err
