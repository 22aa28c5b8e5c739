"""Inference runtimes behind one small Session interface (see registry.RUNTIMES)."""
