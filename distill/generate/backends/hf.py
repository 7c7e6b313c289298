"""Local batched generation with transformers' `model.generate` (small teachers, CPU tests, students)."""

from __future__ import annotations

from distill.generate.backends.base import Completion, InProcessQueue, Request, Sampling, derive_seed
from distill.generate.prompting import check_round_trip, render_chat


class TransformersBackend(InProcessQueue):
    name = "transformers"

    def __init__(self, model: str, opts):
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        super().__init__()
        self.version = transformers.__version__
        self.opts = opts
        self.window = self.capacity = opts.batch_size
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        check_round_trip(self.tokenizer, model)
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so every row continues its own prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, opts.dtype)).to(opts.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}

    def poll(self):
        """One padded batch: the queued requests of the first one's sampling, up to `batch_size` samples."""
        if not self._queue:
            return []
        sampling = self._queue[0][2]
        take, samples = [], 0
        for item in self._queue:
            if item[2] == sampling and (not take or samples + sampling.n <= self.opts.batch_size):
                take.append(item)
                samples += sampling.n
        taken = {id(item) for item in take}
        self._queue = [item for item in self._queue if id(item) not in taken]
        outs = self._generate([r for _, r, _ in take], sampling)
        return [(key, out) for (key, _, _), out in zip(take, outs)]

    def _generate(self, requests: list[Request], sampling: Sampling) -> list[list[Completion]]:
        torch, tok = self.torch, self.tokenizer
        # Each request is repeated n times so one padded batch holds whole problems.
        flat = [(r, j) for r in requests for j in range(sampling.n)]
        texts: list[Completion] = []
        for start in range(0, len(flat), self.opts.batch_size):
            batch = flat[start : start + self.opts.batch_size]
            prompts = [render_chat(tok, r.messages, r.prefix) for r, _ in batch]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.opts.device)
            torch.manual_seed(derive_seed(sampling.seed, batch[0][0].id, batch[0][1]))
            with torch.no_grad():
                out = self.model.generate(
                    **enc,
                    do_sample=sampling.temperature > 0,
                    temperature=sampling.temperature if sampling.temperature > 0 else None,
                    top_p=sampling.top_p if sampling.temperature > 0 else None,
                    max_new_tokens=sampling.max_tokens,
                    pad_token_id=tok.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for k, (r, _) in enumerate(batch):
                ids = new[k].tolist()
                # Generated length up to and including the first stop token; the rest is padding.
                stop_at = next((i for i, t in enumerate(ids) if t in self.stop_ids), None)
                n_tokens = len(ids) if stop_at is None else stop_at + 1
                body = tok.decode(ids[:n_tokens], skip_special_tokens=True)
                texts.append(
                    Completion(
                        r.prefix + body,
                        "length" if stop_at is None else "stop",
                        int(enc["attention_mask"][k].sum()),
                        n_tokens,
                    )
                )
        return [texts[i * sampling.n : (i + 1) * sampling.n] for i in range(len(requests))]

    def close(self) -> None:
        del self.model
