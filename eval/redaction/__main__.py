"""``python -m eval.redaction [--split dev,test] [--errors]``: recall per kind and false positives
of the PII redactor on the labelled utterances. ``--errors`` lists the misses and false positives
of the dev split only: the test split is scored, never read for tuning."""

from __future__ import annotations

import argparse
import sys
import time

from . import KINDS, SPLITS, Score, asr, load, score


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}% ({n}/{d})" if d else "    - (0/0)"


def report(split: str, s: Score, seconds: float) -> list[str]:
    lines = [f"## {split}: {s.utterances} utterances, {s.negatives} without PII ({seconds * 1000:.0f} ms)"]
    lines.append(f"{'kind':<14} {'recall (kind)':>18} {'masked (any kind)':>20}")
    for kind in KINDS:
        lines.append(
            f"{kind:<14} {_pct(s.found[kind], s.labelled[kind]):>18} {_pct(s.masked[kind], s.labelled[kind]):>20}"
        )
    total = sum(s.labelled.values())
    lines.append(f"{'all':<14} {_pct(sum(s.found.values()), total):>18} {_pct(sum(s.masked.values()), total):>20}")
    lines.append(
        f"false positives: {s.false_spans} masked spans over no PII; "
        f"{_pct(s.utterances_with_false, s.utterances).strip()} of utterances have one; "
        f"{_pct(s.negatives_with_false, s.negatives).strip()} of the negatives"
    )
    return lines


def asr_report(split: str) -> list[str]:
    started = time.perf_counter()
    r = asr.run(load(split))
    lines = [f"## {split}, through festival speech and PocketSphinx ({time.perf_counter() - started:.0f} s)"]
    for kind in KINDS:
        lines.append(f"{kind:<14} {_pct(r.found[kind], r.labelled[kind]):>18}")
    lines.append(
        f"false positives: {r.false_spans} masks beyond the labels; "
        f"{r.utterances_with_false}/{r.utterances} utterances; "
        f"{r.negatives_with_false}/{r.negatives} negatives"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.redaction", description=__doc__)
    parser.add_argument("--split", default=",".join(SPLITS))
    parser.add_argument(
        "--asr", action="store_true", help="also through festival speech and the offline recogniser (slow cold)"
    )
    parser.add_argument("--errors", action="store_true", help="list the dev split's misses and false positives")
    args = parser.parse_args(argv)
    out: list[str] = ["# PII redaction (python -m eval.redaction)"]
    for split in args.split.split(","):
        started = time.perf_counter()
        s = score(split)
        out += report(split, s, time.perf_counter() - started)
        if args.errors and split == "dev":
            out += ["misses:", *(f"  {m}" for m in s.misses)]
            out += ["false positives:", *(f"  {f}" for f in s.false_positives)]
        if args.asr:
            out += asr_report(split)
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
