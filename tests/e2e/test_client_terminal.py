"""`callpipe` in a real terminal (tmux), looked at: the validation report, the progress bar
while the rate limit bites, Ctrl-C and its summary, the resumed run, and `watch`'s table.
The captured screens are written to the test's directory (screens.txt)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.gateway.config import GatewaySettings
from tests.support.call_files import write_calls_csv
from tests.support.gateway import ROOT, PartnerCreds, create_partner, gateway_process
from tests.support.terminal import Terminal, terminal

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]

CALLPIPE = str(Path(sys.executable).with_name("callpipe"))
BAR = re.compile(r"Submitting calls\.csv\s+[━╸╺ ]+\s+([\d,]+)/2,000\s+(\d+)%")


def finished(screen: str) -> bool:
    return re.search(r"^EXIT=\d+$", screen, re.MULTILINE) is not None


def progress(screen: str) -> int:
    found = BAR.findall(screen)
    return int(found[-1][0].replace(",", "")) if found else 0


async def test_the_progress_bar_ctrl_c_and_the_resumed_run_as_seen_in_a_terminal(
    gateway_settings: GatewaySettings, database_url: str, tmp_path: Path
) -> None:
    partner = await create_partner(database_url, rate_limit=30)  # 30 at once, then one every 2 s
    write_calls_csv(tmp_path / "calls.csv", 2000, invalid_every=100)
    with gateway_process(gateway_settings, tmp_path / "gateway.log") as url, terminal("progress") as term:
        try:
            await look(term, url, partner, tmp_path, database_url)
        finally:
            (tmp_path / "screens.txt").write_text(
                "\n\n".join(f"--- t={t - term.shots[0][0]:.1f}s ---\n{text}" for t, text in term.shots)
            )


async def look(term: Terminal, url: str, partner: PartnerCreds, tmp_path: Path, database_url: str) -> None:
    env = {
        "CALLPIPE_BASE_URL": url,
        "CALLPIPE_API_KEY": partner.api_key,
        "CALLPIPE_API_SECRET": partner.api_secret,
        "CALLPIPE_TENANT_ID": "tenant1",
        "CALLPIPE_SUBTENANT_ID": "subtenant1",
    }
    term.run([CALLPIPE, "submit", "calls.csv"], env, tmp_path)
    checked = term.wait_for(lambda s: "Checked 2,000 rows" in s, timeout=30)
    assert "1,980 valid, 20 invalid" in checked
    assert re.search(r"line 101 \(bulk-\w+-000099\): call\.contact_number: contact_number must be", checked)

    waiting = term.wait_for(lambda s: "rate limited: waiting" in s and progress(s) > 0)
    lines = waiting.splitlines()
    at = [i for i, line in enumerate(lines) if BAR.search(line)][-1]
    bar, outcomes = lines[at], lines[at + 1]
    assert re.search(r"\d+ calls/s \d:\d\d:\d\d eta \d:\d\d:\d\d", bar)
    assert re.search(r"✓ [\d,]+ accepted  = 0 duplicate  ✗ [\d,]+ rejected\s+rate limited: waiting", outcomes)

    term.press("C-c")
    stopped = term.wait_for(finished)
    assert "Stopping: waiting for the requests in flight" in stopped
    assert re.search(r"Interrupted: 2,000 rows of calls\.csv", stopped)
    assert "Run the same command again to resume" in stopped and "EXIT=130" in stopped
    before = int(re.search(r"accepted\s+([\d,]+)", stopped).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 0 < before < 1980

    term.clear()
    term.run([CALLPIPE, "submit", "calls.csv"], env, tmp_path)
    done = term.wait_for(finished, timeout=120)
    assert "Done: 2,000 rows of calls.csv" in done and "EXIT=1" in done  # rows were rejected
    assert re.search(rf"skipped\s+{before:,}\s+\(accepted in an earlier run", done)
    assert re.search(rf"accepted\s+{1980 - before:,}\b", done)
    assert "rejected          20  -> " in done and "calls.csv.rejected.csv" in done

    # Following them is reading: more room for it (what an operator would set for a bulk load).
    subprocess.run(
        [sys.executable, "-m", "services.gateway.admin", "partner", "set-rate-limit", partner.partner_id, "600"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        check=True,
        timeout=60,
    )
    time.sleep(2.5)  # the gateway reuses a found credential (and its limit) for 2 s
    term.clear()
    term.run([CALLPIPE, "watch", "--input", "calls.csv", "--timeout", "3", "--interval", "1"], env, tmp_path)
    table = term.wait_for(finished, timeout=60)
    assert "1,980 received" in table and "(1,980 calls)" in table
    assert re.search(r"│ bulk-\w+-\d{6} │ received │ \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ │", table)
    assert "1,980 calls still in progress after 3.0s" in table and "EXIT=6" in table
