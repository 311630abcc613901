"""keras.models: cnn's Sequential, Model and load_model under Keras' import path. `Model(inputs, outputs)` is
Keras's functional API (cnn.functional); isinstance(m, keras.Model) holds for every cnn model."""
from ..models import Model, Sequential, load_model

__all__ = ["Sequential", "Model", "load_model"]
