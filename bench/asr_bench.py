"""Speech-recognition benchmark: real-time factor of the default engine on one core, word error
rate per voice, format and layout, and the recognition worker's peak memory.

The call is every festival script of ``tests/support/audio.py`` spoken in a row (about three
minutes; agent = male diphone voice ``kal_diphone``, customer = female HTS voice ``slt``),
rendered stereo (agent left, customer right) and mono, encoded as WAV, MP3 and M4A. It goes
through the real transcriber (``create_transcriber``) with one worker process, pinned to one
CPU; the worker's CPU time comes from ``/proc``.

- wall RTF = wall-clock time of ``transcribe`` / audio duration (includes decoding and IPC);
- CPU RTF = the worker's CPU time / audio duration (what one core spends per second of audio).

``--tradeoff`` also runs the PocketSphinx settings that were weighed against the default
(slow: six configurations over all files).

Usage: python -m bench.asr_bench [--formats wav,mp3,m4a] [--cpu 0] [--tradeoff]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.common import CLK_TCK, OUT, _cpu_ticks, log, peak_rss_mb
from schemas.analysis import Speaker
from services.analyzer.asr import AsrRequest, AsrSettings
from services.analyzer.asr.audio import VadSettings
from services.analyzer.asr.sphinx_engine import DEFAULT_DECODER_OPTIONS, PocketSphinxTranscriber, SphinxTuning
from tests.support import audio, wer

STEREO: tuple[Speaker, ...] = ("agent", "customer")
MONO: tuple[Speaker, ...] = ("unknown",)

PRESETS: dict[str, SphinxTuning] = {
    "default (chosen)": SphinxTuning(),
    "stock PocketSphinx + stock endpointer (0.3 s, 0.9)": SphinxTuning(
        decoder={}, vad=VadSettings(window_s=0.3, ratio=0.9)
    ),
    "default, no flat pass (-fwdflat no)": SphinxTuning(decoder={**DEFAULT_DECODER_OPTIONS, "fwdflat": False}),
    "default, -ds 2": SphinxTuning(decoder={**DEFAULT_DECODER_OPTIONS, "ds": 2}),
    "default, -topn 2 -maxhmmpf 3000": SphinxTuning(decoder={**DEFAULT_DECODER_OPTIONS, "topn": 2, "maxhmmpf": 3000}),
    "default, narrow beams (1e-40/1e-24/1e-40)": SphinxTuning(
        decoder={**DEFAULT_DECODER_OPTIONS, "beam": 1e-40, "wbeam": 1e-24, "pbeam": 1e-40}
    ),
}


@dataclass(frozen=True)
class Run:
    fmt: str
    layout: str
    audio_s: float
    wall_s: float
    cpu_s: float
    total: wer.WerCount
    per_voice: dict[str, wer.WerCount]


def long_call(stereo: bool) -> audio.RenderedCall:
    turns = [turn for script in audio.SCRIPTS.values() for turn in script]
    return audio.render_conversation(turns, stereo=stereo)


def prepare(formats: list[audio.Format], directory: Path) -> list[tuple[str, str, audio.RenderedCall, Path]]:
    directory.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, str, audio.RenderedCall, Path]] = []
    for stereo in (True, False):
        call = long_call(stereo)
        layout = "stereo" if stereo else "mono"
        for fmt in formats:
            path = directory / f"call-{layout}.{fmt}"
            path.write_bytes(audio.encode(call, fmt))
            files.append((fmt, layout, call, path))
    return files


async def measure(
    tuning: SphinxTuning, files: list[tuple[str, str, audio.RenderedCall, Path]], cpu: int
) -> tuple[list[Run], float]:
    transcriber = PocketSphinxTranscriber(AsrSettings(workers=1, timeout_base_s=3600), tuning)
    try:
        # Warm up: start the worker and load the model before anything is timed.
        warm = files[0][3]
        await transcriber.transcribe(AsrRequest(str(warm), MONO, 0))
        [pid] = transcriber.pool.worker_pids()
        os.sched_setaffinity(pid, {cpu})
        runs = []
        for fmt, layout, call, path in files:
            speakers = STEREO if layout == "stereo" else MONO
            ticks, started = _cpu_ticks(pid), time.perf_counter()
            result = await transcriber.transcribe(AsrRequest(str(path), speakers, call.duration_s))
            wall, cpu_s = time.perf_counter() - started, (_cpu_ticks(pid) - ticks) / CLK_TCK
            hypothesis = " ".join(s.text for s in result.segments)
            per_voice = {}
            if layout == "stereo":
                for speaker, voice in audio.DEFAULT_VOICES.items():
                    reference = " ".join(t.text for t in call.turns if t.speaker == speaker)
                    said = " ".join(s.text for s in result.segments if s.speaker == speaker)
                    per_voice[voice] = wer.count(reference, said)
            runs.append(
                Run(fmt, layout, result.duration_s, wall, cpu_s, wer.count(call.transcript, hypothesis), per_voice)
            )
            log(f"{fmt} {layout}: WER {runs[-1].total.wer:.1%}, CPU RTF {cpu_s / result.duration_s:.3f}")
        return runs, peak_rss_mb(pid)
    finally:
        await transcriber.close()


def pct(count: wer.WerCount) -> str:
    return f"{100 * count.wer:.1f}%"


def main_table(runs: list[Run], rss_mb: float, cpu: int) -> None:
    male, female = audio.MALE, audio.FEMALE
    print(f"### Default engine, one worker pinned to CPU {cpu} ({os.cpu_count()} CPUs on this machine)\n")
    print(
        "| format | layout | audio s | wall RTF | CPU RTF | WER | WER agent (male, kal) | WER customer (female, slt) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        m = pct(r.per_voice[male]) if male in r.per_voice else "-"
        f = pct(r.per_voice[female]) if female in r.per_voice else "-"
        print(
            f"| {r.fmt} | {r.layout} | {r.audio_s:.1f} | {r.wall_s / r.audio_s:.3f} | {r.cpu_s / r.audio_s:.3f} "
            f"| {pct(r.total)} | {m} | {f} |"
        )
    audio_s = sum(r.audio_s for r in runs)
    total = wer.pooled(r.total for r in runs)
    voices = {v: wer.pooled(r.per_voice[v] for r in runs if v in r.per_voice) for v in (male, female)}
    print(
        f"| **all** | | {audio_s:.1f} | {sum(r.wall_s for r in runs) / audio_s:.3f} | "
        f"{sum(r.cpu_s for r in runs) / audio_s:.3f} | {pct(total)} | {pct(voices[male])} | {pct(voices[female])} |"
    )
    print(f"\nPeak RSS of the recognition worker: {rss_mb:.0f} MiB.")
    print("Targets: WER <= 20% and RTF <= 0.2 on one core.\n")


def tradeoff_table(results: dict[str, list[Run]]) -> None:
    print("### PocketSphinx settings weighed (same files; WER pooled over formats)\n")
    print("| settings | WER all | WER stereo | WER mono | WER male | WER female | CPU RTF |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        by_layout = {lay: wer.pooled(r.total for r in runs if r.layout == lay) for lay in ("stereo", "mono")}
        voices = [wer.pooled(r.per_voice[v] for r in runs if v in r.per_voice) for v in (audio.MALE, audio.FEMALE)]
        rtf = sum(r.cpu_s for r in runs) / sum(r.audio_s for r in runs)
        print(
            f"| {name} | {pct(wer.pooled(r.total for r in runs))} | {pct(by_layout['stereo'])} | "
            f"{pct(by_layout['mono'])} | {pct(voices[0])} | {pct(voices[1])} | {rtf:.3f} |"
        )
    print()


async def run(formats: list[audio.Format], cpu: int, tradeoff: bool) -> None:
    if not audio.tools_available():
        raise SystemExit("festival and its voices are needed (deploy/local/stack.py install)")
    files = prepare(formats, OUT / "asr")
    log(f"audio: {len(files)} files of {files[0][2].duration_s:.0f} s")
    runs, rss = await measure(SphinxTuning(), files, cpu)
    main_table(runs, rss, cpu)
    if tradeoff:
        results = {}
        for name, tuning in PRESETS.items():
            log(f"preset: {name}")
            results[name] = runs if tuning == SphinxTuning() else (await measure(replace(tuning), files, cpu))[0]
        tradeoff_table(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", default="wav,mp3,m4a", help="comma-separated: wav, mp3, m4a, aac, mp4")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU the worker is pinned to")
    parser.add_argument("--tradeoff", action="store_true", help="also measure the alternative settings")
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(audio.FORMATS)
    if unknown:
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")
    asyncio.run(run(formats, args.cpu, args.tradeoff))


if __name__ == "__main__":
    main()
