"""scikit-learn compatible MLPClassifier and MLPRegressor whose training runs in C (csrc/mlp.c).

Same parameters, defaults, fitted attributes, messages and random-number order as
sklearn.neural_network (1.9), so with a fixed random_state the loss curves agree with
scikit-learn's to rounding. A whole run of minibatches (forward, backward, update) is one C call
with the GIL released; the Python side keeps sklearn's epoch logic (schedules, stopping rules).

Where this differs from scikit-learn, on purpose:
- fit and partial_fit are all or nothing: one that raises (bad data, non-finite weights, Ctrl-C before an
  epoch of it has ended) leaves the estimator as it was. sklearn keeps what the failed call changed.
- Non-finite weights stop the fit at the end of the epoch that made them, not after max_iter epochs.
- Arrays in non-native byte order ('>f4') are read as their native twin ('<f4'): a float32 input trains
  in float32 whatever its byte order (sklearn converts '>f4' to float64).
- One estimator is safe to use from several threads: fit, partial_fit and predict take turns.
"""
import copy
import functools
import threading
import warnings
import weakref

import numpy as np
import scipy
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import _core, distributed
from ._contention import ThreadCap
from ._interrupt import NoCommit, deferring_interrupts
from ._validation import INT_MAX, check_choice, check_number

__all__ = ["MLPClassifier", "MLPRegressor"]

_HIDDEN = {"identity": _core.ACT_IDENTITY, "logistic": _core.ACT_SIGMOID, "tanh": _core.ACT_TANH,
           "relu": _core.ACT_RELU}
_OUTPUT = {"identity": _core.MLP_OUT_IDENTITY, "logistic": _core.MLP_OUT_LOGISTIC,
           "softmax": _core.MLP_OUT_SOFTMAX, "exp": _core.MLP_OUT_EXP}
_SOLVERS = {"lbfgs", "sgd", "adam"}
_STOCHASTIC = {"sgd", "adam"}
# Multiply-adds per C call: Python sees a Ctrl-C only between calls, so this bounds the wait (~10 ms).
_WORK_PER_CALL = 1 << 25
# scipy 1.15 dropped L-BFGS-B's iprint option (sklearn.utils.fixes does the same test).
_LBFGS_IPRINT = tuple(int(v) for v in scipy.__version__.split(".")[:2]) < (1, 15)
_MAX_HIDDEN_LAYERS = 255  # csrc/module.c holds at most 256 weight layers (MLP_MAX_UNITS widths)
_MAX_ELEMENTS = np.iinfo(np.intp).max  # the longest array numpy (and a size_t count in C) can describe
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and need to "
               "be preprocessed.")  # sklearn's words; _fit_or_raise adds what became of the estimator


def _native(a):
    """a in native byte order: the binding reads raw memory, and '>f4' must train as float32, not float64."""
    if isinstance(a, np.ndarray) and not a.dtype.isnative:
        return a.astype(a.dtype.newbyteorder("="))
    return a


# Each estimator's lock, kept out of its __dict__ so that pickling, clone and sklearn's checks never see it.
_LOCKS = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _locked(method):
    """Run method holding the estimator's lock: a predict in one thread never sees a fit of another half done.
    Reentrant, as early stopping scores (predicts) inside fit."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _LOCKS_GUARD:
            lock = _LOCKS.get(self) or _LOCKS.setdefault(self, threading.RLock())
        with lock:
            return method(self, *args, **kwargs)
    return wrapper


def _as_input(X, dtype):
    """X as the C kernels take it: a C-contiguous array and (None, None), or for a sparse matrix (CSR: the first
    layer then runs on its nonzeros) its data and (indices, indptr) in int64, the binding's index type."""
    if scipy.sparse.issparse(X):
        X = X.tocsr()
        return (np.ascontiguousarray(X.data, dtype=dtype),
                (np.ascontiguousarray(X.indices, dtype=np.int64), np.ascontiguousarray(X.indptr, dtype=np.int64)))
    return np.ascontiguousarray(X, dtype=dtype), (None, None)


def _pack(coefs, intercepts, dtype):
    """One flat vector in sklearn's _pack order: every coefficient matrix, then every intercept."""
    return np.concatenate([np.ravel(a) for a in list(coefs) + list(intercepts)]).astype(dtype, copy=False)


class _Optimizer:
    """sklearn's SGDOptimizer / AdamOptimizer bookkeeping over the flat parameter vector.

    The update rule runs in C (sgd_step / adam_step, keras variants); this keeps the learning-rate
    schedule, the step count and the flat state (SGD velocity, or Adam's m then v)."""

    def __init__(self, est, count, dtype):
        self.adam = est.solver == "adam"
        self.learning_rate_init = est.learning_rate_init
        self.learning_rate = float(est.learning_rate_init)
        self.lr_schedule = est.learning_rate if not self.adam else None
        self.power_t = est.power_t
        self.settings = (float(est.momentum), bool(est.nesterovs_momentum), float(est.beta_1),
                         float(est.beta_2), float(est.epsilon))
        self.state = np.zeros(2 * count if self.adam else count, dtype=dtype)
        self.t = 0

    def args(self):
        momentum, nesterov, beta_1, beta_2, epsilon = self.settings
        lr = self.learning_rate_init if self.adam else self.learning_rate
        return (self.adam, lr, momentum, nesterov, beta_1, beta_2, epsilon, self.t)

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(f"{msg} Setting learning rate to {self.learning_rate:f}")
        return False


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, initialisation, the solvers, the forward pass."""

    _commit = NoCommit()  # fit/partial_fit put a Commit here: while it is active a Ctrl-C waits for _checkpoint

    def _store_params(self, arguments):
        """__init__ only stores: each constructor argument under its own name."""
        for name, value in arguments.items():
            if name != "self":
                setattr(self, name, value)

    def _check_params(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if len(sizes) > _MAX_HIDDEN_LAYERS:
            raise ValueError(f"hidden_layer_sizes must hold at most {_MAX_HIDDEN_LAYERS} layers (the C engine's "
                             f"limit), got {len(sizes)}")
        for s in sizes:
            check_number(s, "hidden_layer_sizes", low=1, high=INT_MAX, integer=True)
        check_choice(self.activation, "activation", set(_HIDDEN))
        check_choice(self.solver, "solver", _SOLVERS)
        check_number(self.alpha, "alpha", low=0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            check_number(self.batch_size, "batch_size ('auto' or an integer)", low=1, integer=True)
        check_choice(self.learning_rate, "learning_rate", {"constant", "invscaling", "adaptive"})
        check_number(self.learning_rate_init, "learning_rate_init", low=0, low_open=True)
        check_number(self.power_t, "power_t", low=0)
        check_number(self.max_iter, "max_iter", low=1, integer=True)
        check_number(self.tol, "tol", low=0)
        check_number(self.momentum, "momentum", low=0, high=1)
        check_number(self.validation_fraction, "validation_fraction", low=0, high=1, high_open=True)
        check_number(self.beta_1, "beta_1", low=0, high=1, high_open=True)
        check_number(self.beta_2, "beta_2", low=0, high=1, high_open=True)
        check_number(self.epsilon, "epsilon", low=0, low_open=True)
        if self.n_iter_no_change != np.inf:
            check_number(self.n_iter_no_change, "n_iter_no_change (an integer or np.inf)", low=1, integer=True)
        check_number(self.max_fun, "max_fun", low=1, integer=True)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        return [int(s) for s in sizes]

    # ---- the network in C -------------------------------------------------------------------------

    def _check_sizes(self, units, rows):
        """The parameter vector, Adam's two moments and the workspace for `rows` samples must each be an
        array numpy can describe; the C kernels count them in size_t."""
        count = sum((a + 1) * b for a, b in zip(units, units[1:]))
        work = rows * (2 * sum(units[1:]) + units[0] + units[-1])
        if max(2 * count, work) > _MAX_ELEMENTS:
            raise ValueError(f"hidden_layer_sizes={self.hidden_layer_sizes!r} with {units[0]} features and "
                             f"{units[-1]} outputs makes {count} parameters and {work} workspace elements for "
                             f"{rows} samples; twice the parameters and the workspace must each be at most "
                             f"{_MAX_ELEMENTS}")

    def _units(self):
        return np.array([self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_], dtype=np.int64)

    def _bind(self, params, units):
        """Make coefs_ and intercepts_ views of the flat vector the C kernels train in place."""
        self._params, coefs, intercepts, at = params, [], [], 0
        for fan_in, fan_out in zip(units, units[1:]):
            coefs.append(params[at:at + fan_in * fan_out].reshape(fan_in, fan_out))
            at += fan_in * fan_out
        for fan_out in units[1:]:
            intercepts.append(params[at:at + fan_out])
            at += fan_out
        self.coefs_, self.intercepts_ = coefs, intercepts

    def _flat_params(self):
        """The flat vector behind coefs_/intercepts_, packed anew if they were replaced or unpickled."""
        params = getattr(self, "_params", None)
        if params is not None and all(a.base is params for a in self.coefs_ + self.intercepts_):
            return params
        return _pack(self.coefs_, self.intercepts_, self.coefs_[0].dtype)

    @_locked
    def __getstate__(self):  # a pickle taken while another thread fits waits for that fit
        return super().__getstate__()

    def __setstate__(self, state):
        super().__setstate__(state)
        if hasattr(self, "coefs_"):  # pickling copies every view on its own: make them views of one vector again
            self._bind(self._flat_params(), self._units())

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, _native(X), accept_sparse="csr", reset=False, dtype=(np.float64, np.float32))
        params = self._flat_params()
        x, csr = _as_input(X, params.dtype)
        units = self._units()
        out = np.empty((X.shape[0], units[-1]), dtype=params.dtype)
        work = np.empty(max(1, _core.mlp_workspace_size(units, X.shape[0], False)), dtype=params.dtype)
        _core.mlp_forward(out, work, params, x, units, _HIDDEN[self.activation], _OUTPUT[self.out_activation_], *csr)
        return out

    # ---- fitting -------------------------------------------------------------------------------------

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        # Glorot uniform for weights and biases, layer by layer in sklearn's draw order
        factor = 2.0 if self.activation == "logistic" else 6.0
        coefs, intercepts = [], []
        for fan_in, fan_out in zip(layer_units, layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coefs.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)))
            intercepts.append(self._random_state.uniform(-bound, bound, fan_out))
        self._bind(_pack(coefs, intercepts, dtype), layer_units)
        self._best_params = self._params.copy()
        if self.solver in _STOCHASTIC:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False, setup=None):
        """All or nothing: a fit that raises (bad data, a validation set too small, non-finite weights, Ctrl-C
        before one of its epochs ended) leaves the estimator as it was. A Ctrl-C after that is sklearn's: the
        fit stops with a warning and keeps the last completed batch. `setup` runs first, under the same rule.

        Ctrl-C is deferred for the whole call and raised only at _checkpoint (before each C call) or at the
        end, so it never lands halfway through an update of the estimator, nor of its restoration."""
        self._commit.begin()
        try:
            params = self.get_params(deep=False)
            saved = {k: copy.deepcopy(v) if isinstance(v, (np.ndarray, list, _Optimizer)) else v
                     for k, v in vars(self).items() if k not in params}
            try:
                return self._fit_or_raise(X, y, sample_weight, incremental, setup)
            except BaseException:
                for k in [k for k in vars(self) if k not in params]:
                    delattr(self, k)
                vars(self).update(saved)
                if hasattr(self, "coefs_"):  # the copies are no longer views of one vector
                    self._bind(self._flat_params(), self._units())
                raise
        finally:
            self._commit.end()  # a Ctrl-C that came after the last checkpoint is raised here, the estimator whole

    def _checkpoint(self):
        """Raise the Ctrl-C that _fit deferred, at a point where what it leaves behind is consistent."""
        if self._commit.pending:
            self._commit.pending = False
            raise KeyboardInterrupt

    def _fit_or_raise(self, X, y, sample_weight, incremental, setup):
        hidden = self._check_params()
        if setup is not None:
            setup()
        fitted_before = hasattr(self, "coefs_")
        first_pass = not fitted_before or (not self.warm_start and not incremental)
        X, y = self._validate_input(_native(X), _native(y), incremental, reset=first_pass)
        if sample_weight is not None:  # sklearn 1.7+: each row's loss and gradient weighted, divided by Σ weights
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden + [self.n_outputs_]
        self._check_sizes(layer_units, X.shape[0])
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        else:
            self._bind(self._flat_params(), self._units())
        if self.solver in _STOCHASTIC:
            finite = self._fit_stochastic(X, y, sample_weight, incremental)
        else:
            self._fit_lbfgs(X, y, sample_weight)
            finite = np.isfinite(self._params).all()
        if not finite:  # _fit puts the estimator back as it was; the message says what that is
            raise ValueError(_NON_FINITE + (" The estimator keeps the weights it had before this call." if
                                            fitted_before else " The estimator is left unfitted."))
        return self

    def _net_args(self):
        return self._units(), _HIDDEN[self.activation], _OUTPUT[self.out_activation_], float(self.alpha)

    def _fit_lbfgs(self, X, y, sample_weight):
        if distributed._mlp_group() is not None:
            raise ValueError("solver='lbfgs' does not train data-parallel (each rank would fit its own shard alone); "
                             "use solver='sgd' or 'adam' inside cnn.distributed.data_parallel()")
        params = self._params
        n_samples = X.shape[0]
        x, csr = _as_input(X, params.dtype)
        y = np.ascontiguousarray(y, dtype=params.dtype)
        sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=params.dtype)
        units, hidden, output, alpha = self._net_args()
        work = np.empty(_core.mlp_workspace_size(units, n_samples, True, csr[0] is not None), dtype=params.dtype)
        grad = np.empty_like(params)

        def loss_grad(p):
            self._checkpoint()
            params[...] = p
            loss = _core.mlp_loss_grad(grad, work, params, x, y, units, hidden, output, alpha, sw, *csr)
            return loss, grad.astype(np.float64)  # a copy: scipy may keep the gradient it was given

        options = {"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol}
        if _LBFGS_IPRINT:
            options["iprint"] = 1 if self.verbose is True or self.verbose >= 1 else -1
        res = scipy.optimize.minimize(loss_grad, params.astype(np.float64), method="L-BFGS-B", jac=True,
                                      options=options)
        self.n_iter_ = _check_optimize_result("lbfgs", res, self.max_iter)
        self.loss_ = res.fun
        params[...] = res.x

    def _fit_stochastic(self, X, y, sample_weight, incremental):
        params = self._params
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _Optimizer(self, params.size, params.dtype)
        opt = self._optimizer
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        X_val = y_val = sw_val = None
        if early_stopping:  # the weights split with their rows; the split itself draws as without them (sklearn)
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
            arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
            parts = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X, X_val, y, y_val = parts[:4]
            if sample_weight is not None:
                sample_weight, sw_val = parts[4:]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                                 "of your dataset.")
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        n_samples = X.shape[0]
        x, csr = _as_input(X, params.dtype)
        y = np.ascontiguousarray(y, dtype=params.dtype)
        sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=params.dtype)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        units, hidden, output, alpha = self._net_args()
        work = np.empty(_core.mlp_workspace_size(units, batch_size, True, csr[0] is not None), dtype=params.dtype)
        grad = np.empty_like(params)
        n_batches = -(-n_samples // batch_size)
        per_call = max(1, _WORK_PER_CALL // (3 * batch_size * params.size))
        sample_idx = np.arange(n_samples, dtype=np.int64)
        if distributed._mlp_group() is not None and (sw is not None or csr[0] is not None):
            raise ValueError("cnn.distributed.data_parallel() trains on dense X without sample_weight; got "
                             + ("sample_weight" if sw is not None else "a sparse X") + " (fit outside data_parallel(), "
                             "or pass X.toarray() and no sample_weight)")
        dp = distributed._mlp_fit(self, params, opt, n_samples, batch_size)  # None outside data_parallel()
        if dp is not None:  # cnn.distributed: the ranks' rows count, and shuffling draws over the longest shard
            n_samples, sample_idx = dp.rows, np.arange(dp.batches.longest, dtype=np.int64)
        verbose = self.verbose and (dp is None or dp.group.rank == 0)  # only rank 0 prints
        threads = ThreadCap()  # fewer threads while other processes keep cores busy
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                order = None
                if self.shuffle and dp is not None:
                    order = dp.shuffle(self._random_state, sample_idx)
                elif self.shuffle:  # sklearn.utils.shuffle(sample_idx, random_state): one RandomState.shuffle
                    # of an arange, then sample_idx[perm]; shuffling sample_idx in place makes the same swaps
                    self._random_state.shuffle(sample_idx)
                    order = sample_idx
                accumulated_loss = 0.0
                for begin in range(0, n_batches if dp is None else 0, per_call):
                    end = min(begin + per_call, n_batches)
                    self._checkpoint()
                    threads.tick()
                    loss_sum, opt.t = _core.mlp_epoch(params, opt.state, grad, work, x, y, order, units, hidden,
                                                      output, alpha, batch_size, begin, end, opt.args(), sw, *csr)
                    accumulated_loss += loss_sum
                if dp is not None:
                    accumulated_loss = self._epoch_data_parallel(dp, opt, grad, work, x, y, order, batch_size,
                                                                 threads)
                self.n_iter_ += 1
                self.loss_ = accumulated_loss / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if verbose:
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                # Non-finite weights stay so (NaN spreads; inf meets 0 or -inf), and relu(NaN) may hide them from
                # the loss: sklearn would train on to max_iter and then raise. 10 us on B3's 80k weights (0.004%).
                # With early stopping sklearn returns the best epoch's weights instead, so that runs on.
                if not early_stopping and not np.isfinite(params).all():
                    break
                self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
                opt.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                           "consecutive epochs.")
                    if opt.trigger_stopping(msg, verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        except KeyboardInterrupt:
            if self.n_iter_ == 0:  # no epoch of this call ended: nothing to keep (_fit restores)
                raise
            warnings.warn("Training interrupted by user.", stacklevel=3)
        finally:
            threads.close()
        if early_stopping:
            params[...] = self._best_params
        return np.isfinite(params).all()

    # ---- cnn.distributed: one epoch of data-parallel steps -------------------------------------------------

    def _epoch_data_parallel(self, dp, opt, grad, work, X, y, order, batch_size, threads):
        """mlp_epoch's steps one at a time, each rank's gradient weighted by its share m/B of the global batch
        and summed by one Allreduce before the update; returns the global batch losses' sum over the epoch.
        The L2 term's alpha is split over the ranks with rows, so their weighted terms add up to the global
        batch's alpha/B·W."""
        params = self._params
        units, hidden, output, alpha = self._net_args()
        adam, lr, momentum, nesterov, beta_1, beta_2, epsilon, _ = opt.args()
        count = params.size
        xbuf, ybuf = np.empty((batch_size, X.shape[1]), X.dtype), np.empty((batch_size, y.shape[1]), y.dtype)
        loss_sum = 0.0
        for step in range(dp.steps):
            self._checkpoint()
            threads.tick()
            m, weight, active = dp.batches.weight(step)
            if m:
                start = step * batch_size
                xb, yb = X[start:start + m], y[start:start + m]
                if order is not None:
                    xb, yb = xbuf[:m], ybuf[:m]
                    X.take(order[start:start + m], axis=0, out=xb, mode="clip")
                    y.take(order[start:start + m], axis=0, out=yb, mode="clip")
                loss_sum += m * _core.mlp_loss_grad(grad, work, params, xb, yb, units, hidden, output, alpha / active)
                grad *= weight
            else:  # this rank's rows ran out: it joins the sum with nothing
                grad.fill(0)
            dp.group.allreduce(grad)
            if adam:
                opt.t += 1
                _core.adam_step(params, opt.state[:count], opt.state[count:], grad, lr, beta_1, beta_2, epsilon,
                                0.0, False, opt.t, _core.OPT_KERAS)
            else:
                _core.sgd_step(params, opt.state, grad, lr, momentum, 0.0, 0.0, nesterov, False, _core.OPT_KERAS)
        return dp.epoch_loss(loss_sum)

    def _update_no_improvement_count(self, early_stopping, X_val, y_val, sw_val):
        if early_stopping:
            score = self._score(X_val, y_val, sample_weight=sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {self.validation_scores_[-1]:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._params.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_locked
    @deferring_interrupts
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X (dense, or sparse: the first layer then runs on its nonzeros) and targets
        y, each sample's loss weighted by sample_weight (None: 1) as scikit-learn 1.7+ does; returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def _score_with_function(self, X, y, score_function, sample_weight=None):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier, trained in C.

    Log loss with a softmax output (multiclass) or logistic outputs (binary, multilabel); solvers
    'lbfgs', 'sgd' and 'adam'. Parameters and fitted attributes are scikit-learn's."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        self._store_params(locals())

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse="csr", multi_output=True, dtype=(np.float64, np.float32),
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            group = distributed._mlp_group()
            if group is not None and y.ndim == 1:  # cnn.distributed: every rank's classes, though its shard lacks some
                self._label_binarizer.fit(np.concatenate(group.comm.allgather(unique_labels(y))))
            else:
                self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    @_locked
    def predict(self, X):
        """Predicted class labels of X."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, accuracy_score, sample_weight)

    @available_if(lambda est: est._check_solver())
    @_locked
    @deferring_interrupts
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), weighted as fit's; `classes` (all labels) is required on the first call, and y's
        labels must be among them. Classes that y lacks still get their output (a column of predict_proba)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True,
                         setup=lambda: self._check_partial_fit_classes(y, classes))

    def _check_partial_fit_classes(self, y, classes):
        """sklearn.utils.multiclass._check_partial_fit_first_call, and the label binarizer of a first call."""
        if getattr(self, "classes_", None) is None:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self.classes_ = unique_labels(classes)
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else classes)
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                             f"was: {self.classes_!r}")

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    @_locked
    def predict_proba(self, X):
        """Class probabilities of X, columns in the order of classes_."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return np.vstack([1 - y_pred, y_pred]).T if y_pred.ndim == 1 else y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor, trained in C.

    Half squared error with an identity output, or half Poisson deviance with an exp output."""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        self._store_params(locals())

    def _check_params(self):
        check_choice(self.loss, "loss", {"squared_error", "poisson"})
        return super()._check_params()

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse="csr", multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @_locked
    def predict(self, X):
        """Predicted values of X: shape (n_samples,) for one output, else (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, r2_score, sample_weight)

    @available_if(lambda est: est._check_solver())
    @_locked
    @deferring_interrupts
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), weighted as fit's."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
