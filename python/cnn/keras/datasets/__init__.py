"""keras.datasets: mnist and fashion_mnist, each with Keras' load_data(), read offline by cnn.datasets."""
from . import fashion_mnist, mnist

__all__ = ["mnist", "fashion_mnist"]
