"""PocketSphinx decoder settings weighed on the corpus's telephone renderings (dev calls only).

    python -m eval.asr_settings --calls d05,d15 --condition mulaw8k \\
        --setting 'default={}' --setting 'lw8={"lw": 8.0, "fwdflatlw": 8.5, "bestpathlw": 9.5}'

Each setting overrides the default decoder options (``DEFAULT_DECODER_OPTIONS``); the calls are
recognised in this process, one after the other, and the pooled word error rate and the CPU
real-time factor are printed. Run ``make eval`` (or ``python -m eval.run --conditions
mulaw8k``) first, so the telephone files exist under ``.local/eval/audio``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from services.analyzer.asr.sphinx_engine import (
    DEFAULT_DECODER_OPTIONS,
    SphinxTuning,
    load_decoder,
    transcribe_file,
)
from tests.support.wer import count, pooled

from .corpus import load
from .run import STATE, _recording


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", required=True, help="comma-separated dev call ids")
    parser.add_argument("--condition", default="mulaw8k")
    parser.add_argument("--setting", action="append", required=True, help="NAME=JSON decoder options")
    args = parser.parse_args(argv)
    wanted = set(args.calls.split(","))
    calls = [c for c in load("dev") if c.id in wanted]
    for setting in args.setting:
        name, _, options = setting.partition("=")
        decoder_options = {**DEFAULT_DECODER_OPTIONS, **json.loads(options or "{}")}
        tuning = SphinxTuning(decoder=decoder_options)
        decoder = load_decoder(decoder_options)
        started, counts, audio_s = time.process_time(), [], 0.0
        for call in calls:
            _, data, ext = _recording(call, args.condition)
            path = STATE / "audio" / args.condition / f"dev-{call.id}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            result = transcribe_file(decoder, str(path), ("unknown",), tuning)
            audio_s += result.duration_s
            counts.append(count(" ".join(t.text for t in call.turns), " ".join(s.text for s in result.segments)))
        cpu = time.process_time() - started
        total = pooled(counts)
        sys.stdout.write(f"{name:28s} WER {total.wer:.3f} ({total.words} words)  CPU RTF {cpu / audio_s:.3f}\n")


if __name__ == "__main__":
    main()
