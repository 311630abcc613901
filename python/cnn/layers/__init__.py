"""Layers for cnn.Sequential: one small class per kind, all built on the C kernels."""
from .base import Layer
from .core import Activation, Dense

__all__ = ["Layer", "Dense", "Activation"]
