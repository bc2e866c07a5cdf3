"""The command line tool where no API is needed: validating a file (--dry-run), verifying a saved
callback, exit codes and JSON output. (Against a real gateway: tests/integration/client.)"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from conftest import make_item

from callpipe_client.cli.main import main, parse_headers
from callpipe_client.webhooks import sign

SECRET = "whsec_" + base64.b64encode(b"s" * 24).decode()


def test_dry_run_reports_bad_rows_with_their_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = make_item(), make_item(call__contact_number="555-1234")
    broken = "{not json"
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join([json.dumps(good), json.dumps(bad), broken]) + "\n")
    assert main(["submit", "--dry-run", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Checked 3 rows" in err and "2 invalid" in err
    assert f"line 2 ({bad['call']['id']}): call.contact_number: contact_number must be a phone number" in err
    assert "line 3: line is not valid JSON" in err
    assert main(["--json", "submit", "--dry-run", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 3 and report["valid"] == 1
    assert [r["line"] for r in report["invalid"]] == [2, 3]
    path.write_text(json.dumps(good) + "\n")
    assert main(["submit", "--dry-run", str(path)]) == 0


def test_usage_errors_exit_2_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "calls.csv"
    path.write_text("Ref,recording_url\nc1,https://r/1.mp3\n")
    assert main(["--json", "submit", "--dry-run", str(path)]) == 2
    assert "unknown column(s) 'Ref'" in json.loads(capsys.readouterr().out)["error"]["message"]
    with pytest.raises(SystemExit) as usage:
        main(["submit"])
    assert usage.value.code == 2


def test_missing_credentials_exit_3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("CALLPIPE_API_KEY", "CALLPIPE_API_SECRET", "CALLPIPE_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--tenant", "t", "status", "c1"]) == 3
    assert "no API key" in capsys.readouterr().err


def test_verify_webhook_on_a_saved_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps(
        {"call_id": "c9", "status": "failed", "error": {"stage": "fetch", "code": "http_status", "message": "HTTP 404"}}
    ).encode()
    stamp = int(time.time()) - 3600
    (tmp_path / "body.json").write_bytes(body)
    (tmp_path / "headers.txt").write_text(
        f"HTTP/1.1 POST\r\nwebhook-id: msg_9\r\nwebhook-timestamp: {stamp}\r\n"
        f"webhook-signature: {sign(SECRET, 'msg_9', stamp, body)}\r\n"
    )
    (tmp_path / "secret").write_text(SECRET + "\n")
    args = ["verify-webhook", "--body", str(tmp_path / "body.json"), "--headers", str(tmp_path / "headers.txt")]
    monkeypatch.setenv("CALLPIPE_WEBHOOK_SECRET", SECRET)
    assert main(args) == 1  # an hour old: stale, unless asked to accept its age
    assert "too old" in capsys.readouterr().err
    assert main(["--json", *args, "--any-age"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["valid"] is True and verified["webhook_id"] == "msg_9"
    assert verified["callback"]["error"] == {"stage": "fetch", "code": "http_status", "message": "HTTP 404"}
    (tmp_path / "body.json").write_bytes(body.replace(b"404", b"500"))
    monkeypatch.delenv("CALLPIPE_WEBHOOK_SECRET")
    assert main([*args, "--any-age", "--secret-file", str(tmp_path / "secret")]) == 1
    assert "no matching signature" in capsys.readouterr().err


def test_header_files_as_json_or_lines() -> None:
    assert parse_headers('{"webhook-id": "m"}') == {"webhook-id": "m"}
    assert parse_headers("HTTP/1.1 200 OK\nWebhook-Id: m\nX: a:b\n") == {"webhook-id": "m", "x": "a:b"}
