"""Problem import, normalisation, dedup and decontamination (`distill prompts`)."""
