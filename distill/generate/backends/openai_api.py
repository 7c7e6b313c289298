"""Any OpenAI-compatible chat endpoint: a vLLM or SGLang server, DeepSeek's API, a hosted provider.

Async with a bounded number of requests in flight; 429s, 5xx, timeouts, dropped connections and
malformed bodies are retried with exponential backoff and full jitter (honouring Retry-After). The
key is read from the environment variable named in the config, sent only in the Authorization
header, and never logged or written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random

from distill.errors import DistillError
from distill.generate.backends.base import Completion, Request, Sampling, derive_seed
from distill.generate.prompting import THINK_CLOSE, THINK_PREFIX

log = logging.getLogger(__name__)


class _Retry(Exception):
    """A failure worth another attempt; `wait_s` is the server's Retry-After when it sent one."""

    def __init__(self, why: str, wait_s: float | None = None):
        super().__init__(why)
        self.wait_s = wait_s


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, opts):
        import httpx

        self.httpx = httpx
        self.opts = opts
        self.model = opts.model or model
        self.version = f"httpx-{httpx.__version__}"
        self.headers = {}
        if opts.api_key_env:
            key = os.environ.get(opts.api_key_env)
            if not key:
                raise DistillError(
                    f"openai.api_key_env: environment variable {opts.api_key_env} is not set "
                    "(set it, or api_key_env: null for a server without keys)"
                )
            self.headers["Authorization"] = f"Bearer {key}"

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        return asyncio.run(self._generate(requests, sampling))

    async def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        httpx, o = self.httpx, self.opts
        slots = asyncio.Semaphore(o.max_concurrency)
        async with httpx.AsyncClient(
            base_url=o.base_url,
            headers=self.headers,
            timeout=httpx.Timeout(o.timeout_s, connect=min(o.timeout_s, 30.0)),
            limits=httpx.Limits(max_connections=o.max_concurrency, max_keepalive_connections=o.max_concurrency),
        ) as client:
            # One HTTP request per sample (not `n`): DeepSeek's API takes n=1 only, and a failed sample is retried alone.
            tasks = [asyncio.create_task(self._sample(client, slots, r, j, sampling)) for r in requests for j in range(sampling.n)]
            try:
                flat = await asyncio.gather(*tasks)
            except BaseException:
                # One sample gave up: stop the others before the client closes under them.
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        return [flat[i * sampling.n : (i + 1) * sampling.n] for i in range(len(requests))]

    def _body(self, req: Request, j: int, sampling: Sampling) -> dict:
        messages = list(req.messages)
        body = {"model": self.model, "temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}
        if sampling.seed is not None:
            body["seed"] = derive_seed(sampling.seed, req.id, j)
        if req.prefix and self.opts.prefix_mode == "continue_final_message":
            messages.append({"role": "assistant", "content": req.prefix})
            body.update(add_generation_prompt=False, continue_final_message=True)
        elif req.prefix and self.opts.prefix_mode == "deepseek_prefix":
            messages.append({"role": "assistant", "content": req.prefix, "prefix": True})
        body["messages"] = messages
        return body

    async def _sample(self, client, slots: asyncio.Semaphore, req: Request, j: int, sampling: Sampling) -> Completion:
        o, body = self.opts, self._body(req, j, sampling)
        for attempt in range(o.max_retries + 1):
            try:
                async with slots:
                    resp = await client.post("/chat/completions", json=body)
                return self._parse(resp, req)
            except (_Retry, self.httpx.TransportError) as e:  # TransportError covers timeouts and dropped connections
                why, wait = (str(e) or type(e).__name__), getattr(e, "wait_s", None)
            if attempt == o.max_retries:
                raise DistillError(f"{o.base_url}: request {req.id} sample {j} failed after {o.max_retries} retries: {why}")
            # Full jitter: workers that failed together do not retry together.
            delay = wait if wait is not None else random.uniform(0, min(o.max_backoff_s, o.backoff_s * 2**attempt))
            log.warning("%s: request %s sample %d: %s; retry %d in %.1fs", o.base_url, req.id, j, why, attempt + 1, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _parse(self, resp, req: Request) -> Completion:
        if resp.status_code == 429 or resp.status_code >= 500:
            after = resp.headers.get("retry-after")
            raise _Retry(f"HTTP {resp.status_code}", float(after) if after and after.replace(".", "", 1).isdigit() else None)
        if resp.status_code >= 400:
            raise DistillError(f"{self.opts.base_url}: HTTP {resp.status_code} for request {req.id}: {resp.text[:300]}")
        try:
            data = resp.json()
            choice = data["choices"][0]
            msg = choice["message"]
            content = msg.get("content") or ""
            finish = choice.get("finish_reason") or "stop"
            usage = data.get("usage") or {}
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise _Retry(f"malformed response ({type(e).__name__}: {str(e)[:80]})") from None
        # DeepSeek's API (and servers run with a reasoning parser) return the thinking in its own field.
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        if reasoning:
            text = f"{THINK_PREFIX}{reasoning.strip(chr(10))}\n{THINK_CLOSE}\n\n{content}"
        elif req.prefix and self.opts.prefix_mode != "none":
            text = req.prefix + content  # the server returns only the continuation of the forced prefix
        else:
            text = content
        extra = {k: data[k] for k in ("system_fingerprint", "model") if data.get(k)}
        return Completion(text, finish, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), extra)

    def close(self) -> None:
        pass
