"""What tokens cost: the price table of a paid endpoint, and the spend of a given usage.

Prices are per million tokens, as providers publish them, and live in the config (they change; the
project ships none as truth). `distill generate` shows spend so far and projected and stops at
`max_spend_usd`; `distill plan` prices a whole run from the same table.
"""

from __future__ import annotations

from pydantic import Field

from distill.config import Config


class Price(Config):
    """USD per million tokens. Reasoning tokens are billed as output tokens (DeepSeek, OpenAI)."""

    input: float = Field(..., ge=0, description="USD per 1M prompt tokens not served from the provider's cache.")
    cached_input: float | None = Field(
        None, ge=0, description="USD per 1M prompt tokens served from the provider's cache; None = same as input."
    )
    output: float = Field(..., ge=0, description="USD per 1M completion tokens, reasoning included.")

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """USD for one usage; `cached_tokens` is the part of `prompt_tokens` the provider had cached."""
        cached = min(cached_tokens, prompt_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((prompt_tokens - cached) * self.input + cached * cached_rate + completion_tokens * self.output) / 1e6


def price_for(table: dict[str, Price], model: str) -> Price | None:
    """The price of `model` in a table keyed by model name (exact name; None when it is not listed)."""
    return table.get(model)
