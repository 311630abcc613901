"""Layers for cnn.Sequential and cnn.Model: one small class per kind, all built on the C kernels."""
from .activation import LeakyReLU, ReLU
from .base import Layer
from .conv import Conv2D
from .conv_transpose import Conv2DTranspose
from .core import Activation, Dense
from .dropout import Dropout
from .input_layer import Input, InputLayer
from .merge import Add, Concatenate, Multiply
from .recurrent import GRU, LSTM, SimpleRNN
from .embedding import Embedding
from .preprocessing import RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom
from .wrappers import Bidirectional, TimeDistributed
from .normalization import BatchNormalization
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D, GlobalMaxPool2D,
                      GlobalMaxPooling2D, MaxPool2D, MaxPooling2D)
from .reshape import Flatten, Reshape, ZeroPadding2D
from .upsampling import UpSampling2D

__all__ = ["Layer", "Dense", "Activation", "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
           "Flatten", "ZeroPadding2D", "Dropout", "Input", "InputLayer",
           "Add", "Multiply", "Concatenate",
           "SimpleRNN", "LSTM", "GRU", "Embedding", "TimeDistributed", "Bidirectional",
           "RandomRotation", "RandomZoom", "RandomTranslation", "RandomFlip", "RandomContrast",
           "BatchNormalization", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D",
           "Conv2DTranspose", "UpSampling2D", "ReLU", "LeakyReLU", "Reshape"]
