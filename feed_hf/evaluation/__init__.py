"""Evaluation: metrics and backbone probes of a trained student."""
