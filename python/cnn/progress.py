"""Progress reporting for fit, evaluate and predict: verbose=1 a live bar (per epoch in fit), verbose=2 one
line at the end (of each epoch in fit). Inside fit the validation pass draws nothing of its own, as in Keras.

The bar is tqdm's (tqdm.auto picks the Jupyter widget in a notebook) when tqdm is installed, otherwise
a carriage-return text bar in Keras' format `steps/steps ━━━━━━━━━━━━━━━━━━━━ 2s 3ms/step - accuracy:
0.9 - loss: 0.3`. Either way it redraws at most every `interval` seconds, so it costs a fit nothing."""
import sys
import time

from .callbacks import Callback

__all__ = ["ProgbarLogger"]

BAR_WIDTH = 20


def format_logs(logs):
    """' - name: value' for each log, values as Keras prints them (.4f, or .4e when |v| <= 1e-3)."""
    parts = []
    for key, value in logs.items():
        value = float(value)
        parts.append(f" - {key}: {value:.4e}" if 0 < abs(value) <= 1e-3 else f" - {key}: {value:.4f}")
    return "".join(parts)


def format_time(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(round(seconds))}s"


def format_per_step(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


class ProgbarLogger(Callback):
    def __init__(self, verbose=1, use_tqdm=None, interval=0.1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.interval = interval
        self.stream = stream
        if use_tqdm is None:
            try:
                import tqdm.auto  # noqa: F401
                use_tqdm = True
            except ImportError:
                use_tqdm = False
        self.use_tqdm = use_tqdm
        self._bar = None
        self._in_fit = False

    def _out(self):
        return self.stream or sys.stdout

    def _begin(self):
        """A new bar: fit's epoch, or a whole evaluate or predict."""
        self._start = self._last = time.perf_counter()
        self._logs = {}
        self._drawn = 0
        if self.verbose == 1 and self.use_tqdm:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=self.params["steps"], file=self._out(), leave=True, dynamic_ncols=True,
                             mininterval=self.interval, unit="step", ascii=False)

    def _progress(self, batch, logs):
        self._logs = logs or {}
        if self.verbose != 1:
            return
        now = time.perf_counter()
        last = batch + 1 == self.params["steps"]
        if self._bar is not None:
            self._bar.update(batch + 1 - self._bar.n)
            if now - self._last >= self.interval or last:
                self._bar.set_postfix_str(format_logs(self._logs)[3:], refresh=False)
                self._last = now
        elif now - self._last >= self.interval or last:
            self._draw(batch + 1, self._logs, end="")
            self._last = now

    def _finish(self, logs):
        """The bar completed (verbose 1) or the one summary line (verbose 2)."""
        logs = self._logs if logs is None else logs
        if self.verbose == 1:
            if self._bar is not None:
                self._bar.set_postfix_str(format_logs(logs)[3:], refresh=False)
                self._bar.close()
                self._bar = None
            else:
                self._draw(self.params["steps"], logs, end="\n")
        elif self.verbose == 2:
            elapsed = time.perf_counter() - self._start
            steps = self.params["steps"]
            print(f"{steps}/{steps} - {format_time(elapsed)} - {format_per_step(elapsed / steps)}{format_logs(logs)}",
                  file=self._out(), flush=True)

    def _draw(self, done, logs, end):
        steps = self.params["steps"]
        filled = BAR_WIDTH * done // steps
        elapsed = time.perf_counter() - self._start
        bar = "━" * filled + " " * (BAR_WIDTH - filled)
        width = len(str(steps))
        if done < steps:
            timing = f"{format_time(elapsed / done * (steps - done))}"
        else:
            timing = f"{format_time(elapsed)} {format_per_step(elapsed / steps)}"
        line = f"{done:>{width}}/{steps} {bar} {timing}{format_logs(logs)}"
        # pad to the longest line drawn this epoch so a shorter one leaves no stale characters
        self._drawn = max(self._drawn, len(line))
        print(f"\r{line:<{self._drawn}}", end=end, file=self._out(), flush=True)

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose in (1, 2):
            print(f"Epoch {epoch + 1}/{self.params['epochs']}", file=self._out(), flush=True)
        self._begin()

    def on_train_batch_end(self, batch, logs=None):
        self._progress(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs or self._logs)

    def on_train_end(self, logs=None):
        self._in_fit = False
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # evaluate and predict outside fit; fit's validation pass only adds val_ logs to the epoch's line
    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._begin()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._progress(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._begin()

    def on_predict_batch_end(self, batch, logs=None):
        self._progress(batch, {})  # the logs hold the batch's outputs, which a bar does not print

    def on_predict_end(self, logs=None):
        self._finish({})
