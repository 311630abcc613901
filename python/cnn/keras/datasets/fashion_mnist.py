"""keras.datasets.fashion_mnist.load_data(): cnn.datasets.load_fashion_mnist, as uint8 (N, 28, 28) images and
labels, from /usr/share/datasets/fashion-mnist (`apt-get install -y dataset-fashion-mnist`); without them it
raises FileNotFoundError saying so."""
from ...datasets import load_fashion_mnist as load_data

__all__ = ["load_data"]
