"""Progress reporting for fit: verbose=1 a live bar per epoch, verbose=2 one line per epoch.

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

    def _out(self):
        return self.stream or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.perf_counter()
        self._epoch = epoch
        self._logs = {}
        self._drawn = 0
        if self.verbose == 1:
            print(f"Epoch {epoch + 1}/{self.params['epochs']}", file=self._out(), flush=True)
            if self.use_tqdm:
                from tqdm.auto import tqdm
                self._bar = tqdm(total=self.params["steps"], file=self._out(), leave=True, dynamic_ncols=True,
                                 mininterval=self.interval, unit="step", ascii=False)

    def on_train_batch_end(self, batch, logs=None):
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

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or self._logs
        if self.verbose == 1:
            if self._bar is not None:
                self._bar.set_postfix_str(format_logs(logs)[3:], refresh=False)
                self._bar.close()
                self._bar = None
            else:
                self._draw(self.params["steps"], logs, end="\n")
        elif self.verbose == 2:
            elapsed = time.perf_counter() - self._start
            print(f"Epoch {epoch + 1}/{self.params['epochs']}", file=self._out())
            print(f"{self.params['steps']}/{self.params['steps']} - {format_time(elapsed)} "
                  f"- {format_per_step(elapsed / self.params['steps'])}{format_logs(logs)}", file=self._out(),
                  flush=True)

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
