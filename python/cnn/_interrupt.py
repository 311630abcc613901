"""Ctrl-C during training without a half-applied batch.

A SIGINT that lands between the optimizer's C call and the end of the batch (the step counter, the
callbacks) would leave weights that no callback saw and, for Adam, a step count that disagrees with
the moments. While a model trains in the main thread, SIGINT is caught here: outside a batch's commit
it raises KeyboardInterrupt at once, as Python does; inside it waits for the commit to end. A model's
build is one commit as well, so an interrupt never leaves half-laid-out weights."""
import _signal as signal  # the C module behind `signal`, without its enum wrappers: ~40 us less per train_on_batch
import functools
import threading


class Commit:
    """begin() before the optimizer step, end() once the batch is fully recorded. Commits nest (a build
    inside a fit's setup): SIGINT waits for the outermost end()."""

    def __init__(self):
        self.depth = 0
        self.pending = False

    @property
    def active(self):
        return self.depth > 0

    def begin(self):
        if self.pending and not self.depth:  # it came while the wrapper set up: nothing has changed yet
            self.pending = False
            raise KeyboardInterrupt
        self.depth += 1

    def end(self):
        self.depth = max(self.depth - 1, 0)
        if self.pending and not self.depth:
            self.pending = False
            raise KeyboardInterrupt

    def on_sigint(self, signum, frame):
        # in the wrapper's own frame (installing or restoring the handler) it waits too: raised there, it
        # would leave this handler installed for good
        if not self.active and (frame is None or frame.f_code is not _WRAPPER_CODE):
            raise KeyboardInterrupt
        self.pending = True


def deferring_interrupts(method):
    """Run a training method with the model's SIGINT handling in place (main thread, default handler only)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if isinstance(self._commit, Commit):  # nested: the outer call owns the handler
            return method(self, *args, **kwargs)
        commit = Commit()
        previous = None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous = signal.signal(signal.SIGINT, commit.on_sigint)
        self._commit = commit
        try:
            result = method(self, *args, **kwargs)
        finally:
            commit.depth += 1  # from here a SIGINT waits until the handler is restored
            del self._commit
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if commit.pending:
            raise KeyboardInterrupt
        return result
    return wrapper


_WRAPPER_CODE = deferring_interrupts(lambda self: None).__code__


class NoCommit:
    """Outside the training methods, begin/end do nothing."""

    def begin(self):
        pass

    def end(self):
        pass
