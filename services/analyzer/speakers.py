"""Who said each segment: the transcript the analysis engines read."""

from __future__ import annotations

from schemas.analysis import ChannelMap, TranscriptSegment
from services.analyzer.asr import AsrResult


def transcript_of(asr: AsrResult, channels: ChannelMap) -> list[TranscriptSegment]:
    """The recognised segments with their speakers."""
    del channels
    return list(asr.segments)
