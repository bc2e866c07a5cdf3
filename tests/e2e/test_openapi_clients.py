"""Other languages: a Go client generated from clients/openapi/partner-api.json by the pinned
openapi-generator (from Maven Central, `make openapi-tools`) compiles, and a
program written against it ingests a call, reads it back, lists it, reads the analysis
configuration and decodes a 422 refusal, against the gateway as its own process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from services.gateway.config import GatewaySettings
from tests.support.gateway import ROOT, create_partner, gateway_process

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain")]

OPENAPI = ROOT / "clients" / "openapi"
VERSION = re.search(r"<openapi-generator.version>([^<]+)<", (OPENAPI / "pom.xml").read_text()).group(1)  # type: ignore[union-attr]
GENERATOR = ROOT / ".local" / "tools" / f"openapi-generator-cli-{VERSION}.jar"


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def test_a_generated_go_client_works_against_the_gateway(
    gateway_settings: GatewaySettings, database_url: str, tmp_path: Path
) -> None:
    if not GENERATOR.exists():
        pytest.fail(f"{GENERATOR} is missing: run `make openapi-tools`")
    out = tmp_path / "partnerapi"
    run(
        [
            "java",
            "-jar",
            str(GENERATOR),
            "generate",
            "-i",
            str(OPENAPI / "partner-api.json"),
            "-g",
            "go",
            "-o",
            str(out),
            "--git-host",
            "example.com",
            "--git-user-id",
            "callpipe",
            "--git-repo-id",
            "partnerapi",
            "--additional-properties=packageName=partnerapi,withGoMod=true",
            "--global-property",
            "apiTests=false,modelTests=false",
        ],
        cwd=tmp_path,
    )
    (out / "cmd" / "check").mkdir(parents=True)
    shutil.copy(OPENAPI / "checks" / "go" / "main.go", out / "cmd" / "check" / "main.go")
    # Only the standard library: nothing is fetched, and nothing may be. (The build cache is Go's
    # own, so only the first run on a machine compiles net/http.)
    go_env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off"}
    run(["go", "build", "-o", str(tmp_path / "check"), "./cmd/check"], cwd=out, env=go_env)

    partner = await create_partner(database_url)
    call_id = f"go-{uuid.uuid4().hex[:8]}"
    with gateway_process(gateway_settings, tmp_path / "gateway.log") as url:
        env = {
            "PATH": os.environ["PATH"],
            "CALLPIPE_BASE_URL": url,
            "CALLPIPE_API_KEY": partner.api_key,
            "CALLPIPE_API_SECRET": partner.api_secret,
            "CALL_ID": call_id,
        }
        result = json.loads(run([str(tmp_path / "check")], cwd=tmp_path, env=env, timeout=120))
    assert result["ingested"] == [{"id": call_id, "status": "accepted"}]
    assert result["status"] == "received" and result["received"]
    assert result["listed_status"] == "received"
    assert result["labels"] == ["Needs", "Objection", "Objection Handling"] and result["config_id"].startswith("cfg_")
    assert result["refusal"] == {
        "status": 422,
        "message": "Validation failed",
        "errors": [{"field": "data[0].call.recording_url", "message": "recording_url must be an absolute http(s) URL"}],
    }
