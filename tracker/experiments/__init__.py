"""Experiments around the engine: VOS datasets, J&F metrics and evaluation, sweep reports, the synthetic
benchmark and demo clip, and training."""
