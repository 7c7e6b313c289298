"""What every generation backend (teacher traces, eval samples, the judge) takes and returns.

A backend is a queue: `submit` hands it a request, `poll` returns the requests that have finished
since the last call. The stages keep it full through `distill.generate.stream`; `generate` is the
blocking form for callers that have one batch (the judge, tests).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Hashable, Protocol


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters. Defaults are the DeepSeek-R1 protocol: no greedy decoding."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    n: int = 1  # samples per prompt
    seed: int | None = 0


@dataclass(frozen=True)
class Request:
    """One prompt to sample `Sampling.n` completions for. `messages` is the chat, no system turn by default."""

    id: str
    messages: list[dict]
    # Text the response is forced to start with ("<think>\n" in the R1 protocol); returned in the completion.
    prefix: str = ""


@dataclass
class Completion:
    text: str  # the full completion, starting with the forced prefix
    finish_reason: str  # "stop" | "length" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # What else the backend knows about this sample: "reasoning"/"response" (separate fields of an API),
    # "served_model", "system_fingerprint", "cached_tokens", "reasoning_tokens", "error" (the message).
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    name: str  # "toy" | "transformers" | "vllm" | "openai"
    version: str  # library version, recorded in each row's lineage
    window: int | None  # requests in flight that keep the engine busy; None = submit everything at once
    # Samples it runs at once (vLLM's max_num_seqs): once a process's open shards have no more samples left
    # than this, the next shard is claimed so the engine never drains; None: no engine to keep full (toy).
    capacity: int | None

    def submit(self, key: Hashable, request: Request, sampling: Sampling) -> None:
        """Queue `sampling.n` completions of `request`; `poll` returns them under `key`."""
        ...

    def poll(self) -> list[tuple[Hashable, list[Completion]]]:
        """Wait until at least one submitted request has finished (if any is pending); return the finished ones."""
        ...

    def pending(self) -> int:
        """Requests submitted and not yet returned by `poll`."""
        ...

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        """Return, for each request in order, `sampling.n` completions."""
        ...

    def close(self) -> None: ...


class Queued:
    """`generate` for every backend, from its `submit`/`poll`."""

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        from distill.generate.stream import generate_all

        return generate_all(self, requests, sampling)


class InProcessQueue(Queued):
    """The queue of a backend that generates in this process (toy, transformers): `poll` takes from
    `self._queue`, a list of (key, request, sampling) in submission order."""

    def __init__(self) -> None:
        self._queue: list = []

    def submit(self, key: Hashable, request: Request, sampling: Sampling) -> None:
        self._queue.append((key, request, sampling))

    def pending(self) -> int:
        return len(self._queue)


def derive_seed(seed: int | None, *parts: object) -> int:
    """A 31-bit seed from a base seed and e.g. (request id, sample index), so reruns and resumes draw the
    same samples. vLLM and the toy teacher seed every request; the transformers backend seeds each
    batch from its first request, so its samples also depend on `transformers.batch_size`."""
    h = hashlib.sha256(repr((seed, *parts)).encode()).hexdigest()
    return int(h[:8], 16) & 0x7FFFFFFF
