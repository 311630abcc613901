"""keras.models: cnn's Sequential, Model (the base every cnn model shares) and load_model under Keras' import
path. cnn has no functional API, so `Model(inputs, outputs)` is not available; isinstance(m, keras.Model)
holds for every cnn model."""
from ..models import Model, Sequential, load_model

__all__ = ["Sequential", "Model", "load_model"]
