"""LLMOps: the run store (and later costs, tracing, eval, replay)."""
