"""The pipeline's stages, one module each; the order lives in :mod:`proxy.pipeline`."""
