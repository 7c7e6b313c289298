"""A local OpenAI-compatible chat endpoint that misbehaves on schedule, for the openai backend tests.

Each (prompt, seed) sample fails its first attempts with one fault each, in the order of `FAULTS`
rotated by the sample's seed, then answers with a text that names the prompt and the seed. Per prompt
(`per_prompt`: a prompt's text -> behaviour) it can also refuse every request with a content-filter
400, answer with finish_reason "content_filter", or answer slowly (a long-tail sample); after
`pay_after` paid answers it answers 402 (balance exhausted). Every paid answer is recorded in `paid`.
It binds 127.0.0.1 only and serves one request per thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "timeout", "malformed", "drop", "truncated")


class FakeOpenAI:
    def __init__(self, *, faults_per_sample: int = 2, key: str | None = None, hang_s: float = 1.0, fail_after_ok: int | None = None,
                 per_prompt: dict[str, str] | None = None, pay_after: int | None = None, slow_s: float = 1.0):
        """`fail_after_ok`: after that many successful answers, answer every request with HTTP 500.
        `per_prompt`: {prompt text: "reject" | "filter" | "slow" | "busy"}."""
        self.faults_per_sample, self.key, self.hang_s, self.fail_after_ok = faults_per_sample, key, hang_s, fail_after_ok
        self.per_prompt, self.pay_after, self.slow_s = per_prompt or {}, pay_after, slow_s
        self.paid: list[tuple[str, int | None]] = []
        self.ok = 0
        self.attempts: Counter = Counter()
        self.faults: Counter = Counter()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.handle(self, body)

        ThreadingHTTPServer.request_queue_size = 128  # the client opens up to max_concurrency connections at once
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        if self.key is not None and h.headers.get("Authorization") != f"Bearer {self.key}":
            return self._send(h, 401, json.dumps({"error": "bad key"}).encode())
        user = body["messages"][0]["content"]
        sample = (user, body.get("seed"))
        behaviour = next((b for text, b in self.per_prompt.items() if user.startswith(text)), None)
        if behaviour == "reject":  # DeepSeek's content filter: a 400 for this prompt, every time
            with self.lock:
                self.attempts[sample] += 1
            return self._send(h, 400, json.dumps({"error": {"message": "Content Exists Risk", "type": "invalid_request_error"}}).encode())
        with self.lock:
            broke = self.pay_after is not None and len(self.paid) >= self.pay_after
        if broke:
            return self._send(h, 402, json.dumps({"error": {"message": "Insufficient Balance"}}).encode())
        with self.lock:
            attempt = self.attempts[sample]
            self.attempts[sample] += 1
        fault = "500" if self.fail_after_ok is not None and self.ok >= self.fail_after_ok else None
        if fault is None and attempt < self.faults_per_sample:
            fault = FAULTS[(attempt + (body.get("seed") or 0)) % len(FAULTS)]
        if fault is not None:
            with self.lock:
                self.faults[fault] += 1
            if fault == "429":
                return self._send(h, 429, b'{"error": "rate limited"}', {"Retry-After": "0"})
            if fault == "500":
                return self._send(h, 500, b"internal error")
            if fault == "timeout":
                time.sleep(self.hang_s)
                return self._send(h, 504, b"late")
            if fault == "malformed":
                return self._send(h, 200, b'{"choices": [{"message": ')
            if fault == "drop":  # close the socket without a response
                h.close_connection = True
                h.connection.shutdown(2)
                return None
            if fault == "truncated":  # a valid JSON body without the fields
                return self._send(h, 200, b'{"object": "chat.completion"}')
        msgs = body["messages"]
        forced = msgs[-1]["role"] == "assistant"
        answer = f"seed {body.get('seed')} for {user.splitlines()[0]}"
        message = {"role": "assistant", "content": f"thinking\n</think>\n{answer}" if forced else answer}
        if not forced:  # like DeepSeek's API: the reasoning comes in its own field
            message["reasoning_content"] = "thinking"
        finish = "stop"
        if behaviour == "filter":  # cut by the provider's output filter: a paid, empty answer
            message, finish = {"role": "assistant", "content": ""}, "content_filter"
        if behaviour == "slow":
            time.sleep(self.slow_s)
        if behaviour == "busy" and attempt == 0:  # DeepSeek out of capacity: a cut answer on the first try
            finish = "insufficient_system_resource"
        resp = {
            "id": "x",
            "object": "chat.completion",
            "model": f"{body['model']}-served",  # what answered is named by the server, not by the request
            "system_fingerprint": "fp_test_1",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(answer.split()) + 2,
                      "prompt_cache_hit_tokens": 2, "completion_tokens_details": {"reasoning_tokens": 1}},
        }
        with self.lock:
            self.ok += 1
            self.paid.append(sample)
        self._send(h, 200, json.dumps(resp).encode())

    @staticmethod
    def _send(h, code: int, payload: bytes, headers: dict | None = None) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)
