"""Keras' automatic names: the first Dense is 'dense', the next 'dense_1', and so on, counted per base name
for the whole process (thread-safe) until cnn.utils.clear_session() starts the counts again."""
import threading

_counts = {}
_lock = threading.Lock()


def unique_name(base):
    """base the first time it is asked for, then base_1, base_2, ..."""
    with _lock:
        n = _counts.get(base, 0)
        _counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def reset():
    with _lock:
        _counts.clear()
