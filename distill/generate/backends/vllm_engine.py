"""vLLM's offline engine (`vllm.LLM`): the fast path for teacher traces on GPUs, and on CPU for tests.

Requests are queued into the running engine and its steps are driven here, so finished requests come
back while the others keep decoding: the engine never waits for a batch's longest sample. One engine
per process (see distill/engines.py); data parallelism is one engine per worker process.
"""

from __future__ import annotations

from distill.generate.backends.base import Completion, Queued, Request, Sampling, derive_seed
from distill.generate.prompting import check_round_trip, render_chat

# Our own option, not vLLM's: engines per node, each a worker process (see generate/stage.py).
_NOT_ENGINE_ARGS = {"data_parallel_size"}


def engine_kwargs(model: str, opts) -> dict:
    """`vllm.LLM` keyword arguments: the typed options that are set, and every pass-through key."""
    from vllm.platforms import current_platform

    kwargs = {"model": model}
    for key, value in opts.model_dump().items():
        if key not in _NOT_ENGINE_ARGS and value is not None:
            kwargs[key] = value
    if opts.enable_chunked_prefill is None and current_platform.is_cpu():
        # vLLM-CPU rewinds a seeded generator after a partial prefill and CPU generators cannot
        # (RuntimeError "CPU Generator does not use offset"): schedule whole prompts only.
        kwargs["enable_chunked_prefill"] = False
        kwargs["max_num_batched_tokens"] = max(opts.max_num_batched_tokens or 0, opts.max_model_len or 8192)
    return kwargs


def _engine_tokenizer(kwargs: dict):
    """The tokenizer `vllm.LLM(**kwargs)` will load, loaded the way it loads it."""
    from vllm.tokenizers import get_tokenizer

    return get_tokenizer(
        kwargs.get("tokenizer") or kwargs["model"],
        tokenizer_mode=kwargs.get("tokenizer_mode", "auto"),
        trust_remote_code=kwargs.get("trust_remote_code", False),
        revision=kwargs.get("tokenizer_revision") or kwargs.get("revision"),
    )


class VLLMBackend(Queued):
    name = "vllm"
    window = None  # vLLM's scheduler admits what fits; the rest waits in its queue

    def __init__(self, model: str, opts):
        import vllm

        self.version = vllm.__version__
        kwargs = engine_kwargs(model, opts)
        check_round_trip(_engine_tokenizer(kwargs), model)  # before the weights load: minutes on a cluster
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.capacity = self.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs
        self._keys: dict[str, tuple] = {}  # vLLM request id -> (key, request)

    def _prompt(self, r: Request):
        from vllm.inputs import TokensPrompt

        # Token ids, not text: the chat template already wrote BOS, and text prompts would get a second one.
        ids = self.tokenizer.encode(render_chat(self.tokenizer, r.messages, r.prefix), add_special_tokens=False)
        return TokensPrompt(prompt_token_ids=ids)

    def submit(self, key, request: Request, sampling: Sampling) -> None:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=None if sampling.seed is None else derive_seed(sampling.seed, request.id),
        )
        [rid] = self.llm.enqueue([self._prompt(request)], [params], use_tqdm=False)
        # vLLM returns its internal id ("<counter>-<random>"); outputs carry the counter part.
        self._keys[rid.split("-", 1)[0]] = (key, request)

    def pending(self) -> int:
        return len(self._keys)

    def poll(self):
        engine, done = self.llm.llm_engine, []
        while self._keys and not done:
            for out in engine.step():
                if out.finished:
                    key, r = self._keys.pop(out.request_id)
                    done.append((key, [
                        Completion(r.prefix + o.text, o.finish_reason or "stop", len(out.prompt_token_ids), len(o.token_ids))
                        for o in sorted(out.outputs, key=lambda o: o.index)
                    ]))  # fmt: skip
        return done

    def close(self) -> None:
        """Stop the engine core now, so the next model, stage or SFT gets the memory back."""
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
