"""`make eval`: the labelled corpus through an analysis engine, as text and as audio.

Conditions:

- ``text``: the script straight into the engine (one segment per turn, speakers known, the words
  as written), i.e. a perfect transcript;
- ``stereo16k``: festival speech, agent left and customer right, 16 kHz WAV, through the default
  speech recogniser;
- ``mulaw8k``: the same call mixed to mono, 8 kHz G.711 mu-law WAV (a telephone recording),
  through the recogniser and the mono diarizer;
- ``mp3_8k``: mono, 8 kHz, MP3 at 16 kbit/s (a call recorder's archive), likewise;
- ``mulaw8k_male`` (not run by default): like ``mulaw8k`` with the customer spoken by a second
  male voice of about the same pitch as the agent's, the hard case for the diarizer.

Audio goes through exactly what the analyzer runs (``services.analyzer.speakers`` after the
transcriber). Rendered audio is cached under ``.local/test-audio`` and recognition results under
``.local/eval/asr`` (keyed by the audio and by the recogniser's source code and settings), so a
rerun after an analysis change only pays for the analysis.

Run: ``python -m eval.run [--engine builtin|llm] [--split dev,test] [--conditions ...]``. The LLM
engine reads ``ANALYZER_LLM_BASE_URL``, ``ANALYZER_LLM_MODEL`` and ``ANALYZER_LLM_API_KEY``.
Per-call errors are printed for the dev split only (``--errors``): the test split is scored, not
read for tuning.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas.analysis import DEFAULT_CONFIG, AnalysisConfig, TranscriptSegment
from services.analyzer import speakers
from services.analyzer.analysis import AnalysisEngine, AnalysisInput, AnalysisSettings, create_analysis_engine
from services.analyzer.asr import AsrRequest, AsrResult, AsrSettings, create_transcriber
from tests.support import audio
from tests.support.wer import count, word_attribution

from .corpus import SPLITS, EvalCall, load
from .metrics import CallScore, Totals
from .report import table

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("CALLPIPE_STATE_DIR", ROOT / ".local")) / "eval"
CONDITIONS = ("text", "stereo16k", "mulaw8k", "mp3_8k", "mulaw8k_male")
#: What `make eval` runs unless told otherwise (``mulaw8k_male`` adds a third of the time).
DEFAULT_CONDITIONS = ("text", "stereo16k", "mulaw8k", "mp3_8k")
WORDS_PER_S = 2.6  # the text condition's timing: a brisk speaking rate
GAP_S = 0.4


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------
# Transcripts per condition
# ------------------------------------------------------------------------------------------


def text_transcript(call: EvalCall) -> tuple[list[TranscriptSegment], float]:
    t = 0.3
    segments = []
    for turn in call.turns:
        duration = len(turn.text.split()) / WORDS_PER_S
        segments.append(
            TranscriptSegment(speaker=turn.speaker, start=round(t, 2), end=round(t + duration, 2), text=turn.text)
        )
        t += duration + GAP_S
    return segments, t + 0.3


@dataclass(frozen=True)
class Heard:
    """One call as the analyzer hears it under an audio condition."""

    rendered: audio.RenderedCall
    path: Path
    asr: AsrResult


def _recording(call: EvalCall, condition: str) -> tuple[audio.RenderedCall, bytes, str]:
    if condition == "stereo16k":
        rendered = audio.render_conversation(call.turns, stereo=True)
        return rendered, audio.encode(rendered, "wav"), "wav"
    if condition == "mulaw8k_male":
        voices = {"agent": audio.MALE, "customer": audio.MALE_2}
        rendered = audio.render_conversation(call.turns, stereo=False, voices=voices)
        return rendered, audio.telephone(rendered, "mulaw"), "wav"
    rendered = audio.render_conversation(call.turns, stereo=False)
    if condition == "mulaw8k":
        return rendered, audio.telephone(rendered, "mulaw"), "wav"
    if condition == "mp3_8k":
        return rendered, audio.telephone(rendered, "mp3"), "mp3"
    raise ValueError(condition)


def _asr_fingerprint(model: str) -> str:
    """What recognition output depends on besides the audio: the engine's settings and its code."""
    h = hashlib.sha256(model.encode())
    for path in sorted((ROOT / "services" / "analyzer" / "asr").glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


async def hear(calls: Sequence[EvalCall], condition: str, workers: int, use_cache: bool) -> dict[str, Heard]:
    """Render, encode and recognise every call (recognition cached, see the module docstring)."""
    # Generous budgets: the machine may be shared; the pool never holds more calls than workers.
    transcriber = create_transcriber(AsrSettings(workers=workers, timeout_base_s=600, timeout_per_audio_s=10))
    model = getattr(transcriber, "model", transcriber.name)
    fingerprint = _asr_fingerprint(str(model))
    spool = STATE / "audio" / condition
    cache = STATE / "asr"
    spool.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    stereo = condition == "stereo16k"
    jobs: dict[str, tuple[audio.RenderedCall, Path, Path]] = {}
    for call in calls:
        rendered, data, ext = _recording(call, condition)
        path = spool / f"{call.split}-{call.id}.{ext}"
        path.write_bytes(data)
        key = hashlib.sha256(data + fingerprint.encode() + (b"S" if stereo else b"M")).hexdigest()[:32]
        jobs[call.id] = (rendered, path, cache / f"{key}.pickle")

    # As many calls in flight as workers: a call's time budget starts when it is submitted.
    slots = asyncio.Semaphore(workers)

    async def one(call_id: str) -> Heard:
        rendered, path, cached = jobs[call_id]
        if use_cache and cached.exists():
            return Heard(rendered, path, pickle.loads(cached.read_bytes()))  # noqa: S301 - our own cache
        speakers_ = ("agent", "customer") if stereo else ("unknown",)
        async with slots:
            result = await transcriber.transcribe(AsrRequest(str(path), speakers_, rendered.duration_s))
        cached.write_bytes(pickle.dumps(result))
        return Heard(rendered, path, result)

    try:
        heard = await asyncio.gather(*(one(c.id) for c in calls))
    finally:
        await transcriber.close()
    return {c.id: h for c, h in zip(calls, heard, strict=True)}


# ------------------------------------------------------------------------------------------
# Analysis and scoring
# ------------------------------------------------------------------------------------------


async def analyse(
    engine: AnalysisEngine, call: EvalCall, segments: list[TranscriptSegment], duration_s: float, speech_s: float
) -> CallScore:
    data = AnalysisInput(segments, DEFAULT_CONFIG, duration_s, speech_s)
    started = time.perf_counter()
    analysis = await engine.analyze(data)
    return CallScore(call, analysis, 1000 * (time.perf_counter() - started))


async def run_condition(
    engine: AnalysisEngine,
    calls: Sequence[EvalCall],
    condition: str,
    *,
    workers: int,
    use_cache: bool,
    config: AnalysisConfig = DEFAULT_CONFIG,
) -> list[CallScore]:
    scores = []
    if condition == "text":
        for call in calls:
            segments, duration = text_transcript(call)
            scores.append(await analyse(engine, call, segments, duration, sum(s.end - s.start for s in segments)))
        return scores
    heard = await hear(calls, condition, workers, use_cache)
    for call in calls:
        h = heard[call.id]
        segments, _ = await speakers.attribute(str(h.path), h.asr, config.channels)
        score = await analyse(engine, call, segments, h.asr.duration_s, h.asr.speech_s)
        hypothesis = " ".join(s.text for s in sorted(h.asr.segments, key=lambda s: s.start))
        score.wer = count(" ".join(t.text for t in call.turns), hypothesis)
        score.attribution = word_attribution(segments, h.rendered.turns)
        scores.append(score)
    return scores


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def engine_settings(name: str) -> AnalysisSettings:
    if name == "builtin":
        return AnalysisSettings()
    base_url, model = os.environ.get("ANALYZER_LLM_BASE_URL"), os.environ.get("ANALYZER_LLM_MODEL")
    if not base_url or not model:
        raise SystemExit(
            "ENGINE=llm needs ANALYZER_LLM_BASE_URL and ANALYZER_LLM_MODEL "
            "(and ANALYZER_LLM_API_KEY if the endpoint wants one)"
        )
    return AnalysisSettings(
        engine="llm", llm_base_url=base_url, llm_model=model, llm_api_key=os.environ.get("ANALYZER_LLM_API_KEY") or None
    )


async def main_async(args: argparse.Namespace) -> None:
    splits = [s for s in args.split.split(",") if s]
    conditions = [c for c in args.conditions.split(",") if c]
    for c in conditions:
        if c not in CONDITIONS:
            raise SystemExit(f"unknown condition {c!r}; one of {', '.join(CONDITIONS)}")
    voices = (audio.MALE, audio.FEMALE, audio.MALE_2) if "mulaw8k_male" in conditions else (audio.MALE, audio.FEMALE)
    if any(c != "text" for c in conditions) and not audio.tools_available(voices):
        raise SystemExit("festival and its voices are needed for the audio conditions: run `make test-tools`")
    engine = create_analysis_engine(engine_settings(args.engine))
    calls = {s: load(s) for s in splits}
    results: dict[tuple[str, str], Totals] = {}
    started = time.perf_counter()
    report: dict[str, object] = {}
    try:
        for condition in conditions:
            t0 = time.perf_counter()
            every = [c for s in splits for c in calls[s]]
            scores = await run_condition(engine, every, condition, workers=args.workers, use_cache=not args.no_cache)
            for split in splits:
                results[(condition, split)] = Totals([x for x in scores if x.call.split == split])
            say(f"{condition}: {len(every)} calls in {time.perf_counter() - t0:.0f} s")
            if args.errors and "dev" in splits:
                for x in scores:
                    if x.call.split == "dev" and x.errors():
                        say(f"  {x.call.id}: " + "; ".join(x.errors()))
            report[condition] = [
                {
                    "id": x.call.id,
                    "split": x.call.split,
                    "errors": x.errors(),
                    "analysis": x.analysis.model_dump(mode="json"),
                }
                for x in scores
            ]
    finally:
        await engine.close()
    say()
    say(
        f"Engine: {engine.name} {engine.model} {engine.version}; calls: "
        + ", ".join(f"{s} {len(calls[s])}" for s in splits)
    )
    say()
    say(table(results, conditions, splits))
    say()
    say(f"Total run time: {time.perf_counter() - started:.0f} s")
    STATE.mkdir(parents=True, exist_ok=True)
    out = STATE / f"results-{args.engine}.json"
    out.write_text(json.dumps(report, indent=1))
    say(f"Per-call results: {out}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="builtin", choices=("builtin", "llm"))
    parser.add_argument("--split", default=",".join(SPLITS))
    parser.add_argument("--conditions", default=",".join(DEFAULT_CONDITIONS), help=", ".join(CONDITIONS))
    parser.add_argument("--workers", type=int, default=2, help="recognition processes")
    parser.add_argument("--no-cache", action="store_true", help="recognise again even when cached")
    parser.add_argument("--errors", action="store_true", help="print what each dev call got wrong")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
