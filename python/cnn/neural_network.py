"""sklearn.neural_network's names under `from cnn import neural_network`: cnn.sklearn's estimators."""
from .sklearn import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
