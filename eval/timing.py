"""The built-in engine's analysis time per call, over the recognition results `make eval` cached.

    python -m eval.timing [--rounds 4]

Times ``analyze_transcript`` on every cached 16 kHz stereo recognition result (agent and customer
known) and prints the median and p95 per call. To compare two versions of the engine, run it
from each checkout in turn (``PYTHONPATH=<checkout>``, ``CALLPIPE_STATE_DIR`` pointing at the
same cache), alternating a few times: this machine's noise is larger than small differences.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from collections.abc import Sequence

from schemas.analysis import DEFAULT_CONFIG
from services.analyzer.analysis import AnalysisInput, analyze_transcript

from .run import STATE


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    inputs = []
    for path in sorted((STATE / "asr").glob("*.pickle")):
        asr = pickle.loads(path.read_bytes())  # noqa: S301 - our own cache
        if any(s.speaker == "agent" for s in asr.segments):
            inputs.append(AnalysisInput(asr.segments, DEFAULT_CONFIG, asr.duration_s, asr.speech_s))
    if not inputs:
        raise SystemExit("no cached 16 kHz recognition results: run `make eval` first")
    for data in inputs:  # warm-up: caches, compiled patterns
        analyze_transcript(data)
    times = []
    for _ in range(args.rounds):
        for data in inputs:
            started = time.perf_counter()
            analyze_transcript(data)
            times.append(1000 * (time.perf_counter() - started))
    words = statistics.median(sum(len(s.text.split()) for s in d.transcript) for d in inputs)
    p95 = sorted(times)[int(0.95 * len(times))]
    sys.stdout.write(
        f"{len(inputs)} transcripts (median {words:.0f} words), {args.rounds} rounds: "
        f"median {statistics.median(times):.2f} ms, p95 {p95:.2f} ms per call\n"
    )


if __name__ == "__main__":
    main()
