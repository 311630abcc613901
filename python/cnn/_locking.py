"""The per-model lock: layers keep per-call buffers, so a model's methods that read or write weights run one
at a time (two threads predicting with one model wait for each other and both get right answers)."""
import functools


def locked(method):
    """Run a method holding the model's lock (re-entrant: fit calls build and predict-like helpers)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper
