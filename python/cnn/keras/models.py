"""keras.models: cnn's Sequential and load_model under Keras' import path.

cnn has the Sequential form only, so `Model` names Sequential: isinstance(model, keras.Model) holds for
every cnn model, and a functional `Model(inputs, outputs)` raises TypeError."""
from ..models import Sequential, load_model

Model = Sequential

__all__ = ["Sequential", "Model", "load_model"]
