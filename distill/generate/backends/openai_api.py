"""Any OpenAI-compatible chat endpoint: a vLLM or SGLang server, DeepSeek's API, a hosted provider.

Requests run on an asyncio loop in a background thread, at most `max_concurrency` at once, while the
stage keeps submitting: the window slides across chunk boundaries. 429s, 5xx, timeouts, dropped
connections and malformed bodies are retried with exponential backoff and full jitter (honouring
Retry-After). Any other 4xx (a content filter, a prompt too long) is that sample's answer:
finish_reason "error" with the message kept. 401/402/403 (key, billing, permission) and retries
exhausted stop the stage (`Completion.extra["fatal"]`), after what has finished is saved. The key is
read from the environment variable named in the config, sent only in the Authorization header, and
never logged or written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import random
import threading

from distill.errors import DistillError
from distill.generate.backends.base import Completion, Queued, Request, Sampling, derive_seed
from distill.generate.prompting import THINK_PREFIX
from distill.think import THINK_CLOSE

log = logging.getLogger(__name__)

FATAL_STATUS = (401, 402, 403)  # no other request can succeed: stop
# DeepSeek's finish_reason when its servers ran out of capacity mid-answer: a cut answer, asked again.
RESOURCE_CUT = "insufficient_system_resource"


class _Retry(Exception):
    """A failure worth another attempt; `wait_s` is the server's Retry-After when it sent one."""

    def __init__(self, why: str, wait_s: float | None = None):
        super().__init__(why)
        self.wait_s = wait_s


def _error(message: str, *, fatal: bool = False) -> Completion:
    return Completion("", "error", extra={"error": message, **({"fatal": True} if fatal else {})})


def think_text(reasoning: str, content: str) -> str:
    """The R1 completion of a reply whose reasoning came in its own field."""
    return f"{THINK_PREFIX}{reasoning.strip(chr(10))}\n{THINK_CLOSE}\n\n{content}"


class OpenAIBackend(Queued):
    name = "openai"

    def __init__(self, model: str, opts):
        import httpx

        self.httpx = httpx
        self.opts = opts
        self.model = opts.model or model
        self.version = f"httpx-{httpx.__version__}"
        self.window = self.capacity = opts.max_concurrency
        self.headers = {}
        if opts.api_key_env:
            key = os.environ.get(opts.api_key_env)
            if not key:
                raise DistillError(
                    f"openai.api_key_env: environment variable {opts.api_key_env} is not set "
                    "(set it, or api_key_env: null for a server without keys)"
                )
            self.headers["Authorization"] = f"Bearer {key}"
        self._done: queue.Queue = queue.Queue()
        self._pending = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="distill-openai", daemon=True)
        self._thread.start()
        self._client = asyncio.run_coroutine_threadsafe(self._open(), self._loop).result()

    async def _open(self):
        httpx, o = self.httpx, self.opts
        self._slots = asyncio.Semaphore(o.max_concurrency)
        return httpx.AsyncClient(
            base_url=o.base_url,
            headers=self.headers,
            timeout=httpx.Timeout(o.timeout_s, connect=min(o.timeout_s, 30.0)),
            limits=httpx.Limits(max_connections=o.max_concurrency, max_keepalive_connections=o.max_concurrency),
        )

    def submit(self, key, request: Request, sampling: Sampling) -> None:
        self._pending += 1
        asyncio.run_coroutine_threadsafe(self._request(key, request, sampling), self._loop)

    def pending(self) -> int:
        return self._pending

    def poll(self):
        if not self._pending:
            return []
        done = [self._done.get()]
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                break
        self._pending -= len(done)
        return done

    async def _request(self, key, req: Request, sampling: Sampling) -> None:
        # One HTTP request per sample (not `n`): DeepSeek's API takes n=1 only, and a failed sample is retried alone.
        try:
            samples = await asyncio.gather(*(self._sample(req, j, sampling) for j in range(sampling.n)))
        except Exception as e:  # a bug here must reach the caller, not hang it
            samples = [_error(f"{type(e).__name__}: {e}", fatal=True)] * sampling.n
        self._done.put((key, list(samples)))

    def _body(self, req: Request, j: int, sampling: Sampling) -> dict:
        messages = list(req.messages)
        body = {**self.opts.extra_body, "model": self.model, "temperature": sampling.temperature, "top_p": sampling.top_p,
                "max_tokens": sampling.max_tokens}
        if sampling.seed is not None and self.opts.send_seed:
            body["seed"] = derive_seed(sampling.seed, req.id, j)
        if req.prefix and self.opts.prefix_mode == "continue_final_message":
            messages.append({"role": "assistant", "content": req.prefix})
            body.update(add_generation_prompt=False, continue_final_message=True)
        elif req.prefix and self.opts.prefix_mode == "deepseek_prefix":
            messages.append({"role": "assistant", "content": req.prefix, "prefix": True})
        body["messages"] = messages
        return body

    async def _sample(self, req: Request, j: int, sampling: Sampling) -> Completion:
        o, body = self.opts, self._body(req, j, sampling)
        for attempt in range(o.max_retries + 1):
            try:
                async with self._slots:
                    resp = await self._client.post("/chat/completions", json=body)
                return self._parse(resp, req)
            except (_Retry, self.httpx.TransportError) as e:  # TransportError covers timeouts and dropped connections
                why, wait = (str(e) or type(e).__name__), getattr(e, "wait_s", None)
            if attempt == o.max_retries:
                return _error(f"{o.base_url}: request {req.id} sample {j} failed after {o.max_retries} retries: {why}", fatal=True)
            # Full jitter: workers that failed together do not retry together.
            delay = wait if wait is not None else random.uniform(0, min(o.max_backoff_s, o.backoff_s * 2**attempt))
            log.warning("%s: request %s sample %d: %s; retry %d in %.1fs", o.base_url, req.id, j, why, attempt + 1, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _parse(self, resp, req: Request) -> Completion:
        if resp.status_code in (408, 429) or resp.status_code >= 500:
            after = resp.headers.get("retry-after")
            raise _Retry(f"HTTP {resp.status_code}", float(after) if after and after.replace(".", "", 1).isdigit() else None)
        if resp.status_code >= 400:
            message = f"{self.opts.base_url}: HTTP {resp.status_code} for request {req.id}: {resp.text[:300]}"
            return _error(message, fatal=resp.status_code in FATAL_STATUS)
        try:
            data = resp.json()
            choice = data["choices"][0]
            msg = choice["message"]
            content = msg.get("content") or ""
            finish = choice.get("finish_reason") or "stop"
            usage = data.get("usage") or {}
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise _Retry(f"malformed response ({type(e).__name__}: {str(e)[:80]})") from None
        if finish == RESOURCE_CUT:
            raise _Retry(f"finish_reason {RESOURCE_CUT} (the provider cut the answer for lack of capacity)")
        extra = {"served_model": data.get("model"), "system_fingerprint": data.get("system_fingerprint")}
        # DeepSeek's API (and servers run with a reasoning parser) return the thinking in its own field.
        # (vLLM sends "reasoning": "" when the model closed its think block at once: still a reasoning reply.)
        reasoning = msg.get("reasoning_content") if msg.get("reasoning_content") is not None else msg.get("reasoning")
        if reasoning is not None and content:
            text = think_text(reasoning, content)
            extra.update(reasoning=reasoning.strip("\n"), response=content)
        elif reasoning:  # no answer after the thinking (cut at max_tokens): the think block never closed
            text = THINK_PREFIX + reasoning
        elif req.prefix and self.opts.prefix_mode != "none":
            text = req.prefix + content  # the server returns only the continuation of the forced prefix
        else:
            text = content
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        # OpenAI and vLLM report cached prompt tokens in the details; DeepSeek as prompt_cache_hit_tokens.
        extra["cached_tokens"] = int(prompt_details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0)
        extra["reasoning_tokens"] = completion_details.get("reasoning_tokens")
        return Completion(text, finish, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), extra)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
