"""Rejection sampling and curation of teacher traces (`distill filter`)."""
