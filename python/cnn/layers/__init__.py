"""Layers for cnn.Sequential: one small class per kind, all built on the C kernels."""
from .base import Layer
from .core import Activation, Dense
from .dropout import Dropout
from .input_layer import Input, InputLayer

__all__ = ["Layer", "Dense", "Activation", "Dropout", "Input", "InputLayer"]
