"""A recording host for benchmarks, in its own process: ``/r/<n>.mp3`` is a distinct MP3 per
``n`` (same audio, a different ID3 tag, so every download is a new blob) and ``/big.wav`` a WAV
of ``--big-bytes`` streamed from memory.

Usage: python -m bench.recording_server --port 18200 [--mp3-seconds 60] [--big-bytes 1073741824]
"""

from __future__ import annotations

import argparse
import io
import math
import random
from fractions import Fraction

import av
from aiohttp import web

RATE = 16_000


def base_mp3(seconds: float) -> bytes:
    """A tone with noise, MP3 at 128 kbit/s mono: about 1 MB a minute, like a call recording."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=RATE)
        stream.layout = "mono"
        stream.bit_rate = 128_000
        rng = random.Random(7)
        frame_samples = 1152
        total = int(seconds * RATE)
        for start in range(0, total, frame_samples):
            n = min(frame_samples, total - start)
            pcm = b"".join(
                int(6000 * math.sin(2 * math.pi * 220 * (start + i) / RATE) + rng.randint(-800, 800)).to_bytes(
                    2, "little", signed=True
                )
                for i in range(n)
            )
            frame = av.AudioFrame(format="s16", layout="mono", samples=n)
            frame.planes[0].update(pcm)
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def id3(text: str) -> bytes:
    """A minimal ID3v2.3 tag with one comment frame: changes the bytes, not the audio."""
    body = b"\x00eng\x00" + text.encode()
    frame = b"COMM" + len(body).to_bytes(4, "big") + b"\x00\x00" + body
    size = len(frame)
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + synchsafe + frame


def wav_header(data_bytes: int, rate: int = RATE, channels: int = 2) -> bytes:
    byte_rate = rate * channels * 2
    return (
        b"RIFF"
        + (36 + data_bytes).to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + byte_rate.to_bytes(4, "little")
        + (channels * 2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data"
        + data_bytes.to_bytes(4, "little")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mp3-seconds", type=float, default=60)
    parser.add_argument("--big-bytes", type=int, default=1024**3)
    args = parser.parse_args()
    mp3 = base_mp3(args.mp3_seconds)
    data_bytes = args.big_bytes - 44
    data_bytes -= data_bytes % 4
    noise = random.Random(1).randbytes(1024 * 1024)

    async def recording(request: web.Request) -> web.Response:
        return web.Response(body=id3(request.match_info["n"]) + mp3, content_type="audio/mpeg")

    async def big(request: web.Request) -> web.StreamResponse:
        header = wav_header(data_bytes)
        response = web.StreamResponse(headers={"Content-Type": "audio/wav", "Content-Length": str(44 + data_bytes)})
        await response.prepare(request)
        await response.write(header)
        left = data_bytes
        while left > 0:
            chunk = noise if left >= len(noise) else noise[:left]
            await response.write(chunk)
            left -= len(chunk)
        return response

    async def size(_: web.Request) -> web.Response:
        return web.json_response({"mp3_bytes": len(mp3) + len(id3("0000000")), "big_bytes": 44 + data_bytes})

    app = web.Application()
    app.router.add_get("/r/{n}.mp3", recording)
    app.router.add_get("/big.wav", big)
    app.router.add_get("/healthz", size)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
