"""Latency profiles of the mock model: time to first token, prefill per prompt token, decode per token.

A response's first token comes `ttft + prefill * prompt_tokens` after the request arrives; token k
(0-based) of the completion comes `k * decode` after the first. Deterministic: no jitter, no
queueing between requests (each request is served as if alone, like a server with spare batch room).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    ttft: float  # seconds
    prefill: float  # seconds per prompt token
    decode: float  # seconds per completion token
    basis: str

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "hosted": Profile("hosted", 0.40, 0.0001, 0.0125,
                      "a hosted API like GPT-4o: ~0.4 s to first token, 80 tokens/s (artificialanalysis.ai)"),
    "local8b": Profile("local8b", 0.03, 0.00002, 0.007,
                       "an 8B model on one datacenter GPU with vLLM: ~140 tokens/s single stream"),
    "zero": Profile("zero", 0.0, 0.0, 0.0, "no model latency: what is left is the client's own overhead"),
}
