"""Per-call trace decisions at the gateway, and the context the later stages follow. Run in a
child interpreter: the OpenTelemetry SDK is installed once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import json
from services.common import tracing
tracing.configure_tracing("unit", enabled=True, export=False)
out = {"sampled": 0, "recording": 0, "unsampled_flags": set(), "follow": []}
for i in range(4000):
    span, carrier = tracing.call_trace("call.ingest", {"callpipe.call_id": str(i)})
    version, trace_id, span_id, flags = carrier["traceparent"].split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    if span is None:
        out["unsampled_flags"].add(flags)
        if len(out["follow"]) < 1:
            # A later stage continues the call's context: same trace, its decision followed.
            with tracing.span("calls.ingested.v1 process", parent=carrier) as child:
                ctx = child.get_span_context()
                out["follow"].append([f"{ctx.trace_id:032x}" == trace_id, child.is_recording(),
                                      tracing.log_fields().get("trace_id") == trace_id])
    else:
        out["sampled"] += 1
        out["recording"] += span.is_recording()
        assert f"{span.get_span_context().trace_id:032x}" == trace_id
        tracing.end(span)
out["unsampled_flags"] = sorted(out["unsampled_flags"])
print(json.dumps(out))
"""


def run(sampler_arg: str) -> dict[str, object]:
    env = {**os.environ, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": sampler_arg}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def test_the_gateway_samples_calls_at_the_configured_ratio_and_the_rest_carry_an_unsampled_context() -> None:
    result = run("0.1")
    sampled = result["sampled"]
    assert isinstance(sampled, int) and 250 <= sampled <= 560  # 10% of 4000, with a wide margin
    assert result["recording"] == sampled  # the SDK agrees with the decision taken per call
    assert result["unsampled_flags"] == ["00"]
    # The next stage joins the unsampled call's trace, records nothing, and logs its trace id.
    assert result["follow"] == [[True, False, True]]


def test_every_call_is_traced_when_the_ratio_is_one() -> None:
    result = run("1.0")
    assert result["sampled"] == result["recording"] == 4000
