"""Training core of passion-sweep: data, backbones, PASSION, the training loop and evaluation.

This package runs without Ray and never imports click; ``passion_sweep`` orchestrates it.
"""
