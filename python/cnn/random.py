"""tf.random's seed under `import cnn as tf`: set_seed is cnn.utils.set_random_seed."""
from .utils import set_random_seed as set_seed

__all__ = ["set_seed"]
