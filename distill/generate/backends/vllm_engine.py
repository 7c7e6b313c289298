"""vLLM's offline engine (`vllm.LLM`): the fast path for teacher traces on GPUs, and on CPU for tests.

One engine per process, kept for the whole stage: start-up takes 20-35 s on this CPU and minutes for
a 671B model on 8 GPUs. Data parallelism is one engine per worker process (see generate/stage.py).
"""

from __future__ import annotations

from distill.generate.backends.base import Completion, Request, Sampling, derive_seed
from distill.generate.prompting import render_chat


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, opts):
        import vllm
        from vllm.platforms import current_platform

        self.version = vllm.__version__
        kwargs = dict(
            model=model,
            tensor_parallel_size=opts.tensor_parallel_size,
            gpu_memory_utilization=opts.gpu_memory_utilization,
            enforce_eager=opts.enforce_eager,
            dtype=opts.dtype,
            quantization=opts.quantization,
            trust_remote_code=opts.trust_remote_code,
            enable_prefix_caching=opts.enable_prefix_caching,
        )
        for key in ("max_model_len", "max_num_seqs", "max_num_batched_tokens", "enable_chunked_prefill"):
            if getattr(opts, key) is not None:
                kwargs[key] = getattr(opts, key)
        if opts.enable_chunked_prefill is None and current_platform.is_cpu():
            # vLLM-CPU rewinds a seeded generator after a partial prefill and CPU generators cannot
            # (RuntimeError "CPU Generator does not use offset"): schedule whole prompts only.
            kwargs["enable_chunked_prefill"] = False
            kwargs["max_num_batched_tokens"] = max(opts.max_num_batched_tokens or 0, opts.max_model_len or 8192)
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # Token ids, not text: the chat template already wrote BOS, and text prompts would get a second one.
        prompts = [
            TokensPrompt(prompt_token_ids=self.tokenizer.encode(render_chat(self.tokenizer, r.messages, r.prefix), add_special_tokens=False))
            for r in requests
        ]
        params = [
            SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=None if sampling.seed is None else derive_seed(sampling.seed, r.id),
            )
            for r in requests
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            [
                Completion(r.prefix + o.text, o.finish_reason or "stop", len(out.prompt_token_ids), len(o.token_ids))
                for o in sorted(out.outputs, key=lambda o: o.index)
            ]
            for r, out in zip(requests, outputs)
        ]

    def close(self) -> None:
        """Stop the engine core now, so the next stage (SFT, eval) gets the GPU memory back."""
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
