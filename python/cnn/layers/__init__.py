"""Layers for cnn.Sequential and cnn.Model: one small class per kind, all built on the C kernels."""
from .base import Layer
from .conv import Conv2D
from .core import Activation, Dense
from .dropout import Dropout
from .input_layer import Input, InputLayer
from .merge import Add, Concatenate, Multiply
from .pooling import AveragePooling2D, AvgPool2D, MaxPool2D, MaxPooling2D
from .recurrent import GRU, LSTM, SimpleRNN
from .embedding import Embedding
from .preprocessing import RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from .reshape import Flatten, ZeroPadding2D
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["Layer", "Dense", "Activation", "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "Flatten", "ZeroPadding2D", "Dropout", "Input", "InputLayer",
           "Add", "Multiply", "Concatenate",
           "SimpleRNN", "LSTM", "GRU", "Embedding", "TimeDistributed", "Bidirectional",
           "RandomRotation", "RandomZoom", "RandomTranslation", "RandomFlip", "RandomContrast"]
