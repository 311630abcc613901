"""The public API under a hostile caller: another thread rewrites the labels a fit is reading.

Each case runs in a child process, so that a crash fails the test instead of killing the suite."""
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))

WRITER = textwrap.dedent("""
    import threading, time
    import numpy as np
    import cnn
    from cnn.layers import Dense

    n, k = 8192, 500
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    labels = rng.integers(0, k, n).astype(np.int64)
    good, bad = labels.copy(), np.full(n, 2**40, np.int64)
    model = cnn.Sequential([Dense(k, "softmax", input_dim=8)], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    stop = False

    def writer():
        while not stop:
            labels[:] = bad
            labels[:] = good

    thread = threading.Thread(target=writer)
    thread.start()
    fits = refused = 0
    end = time.monotonic() + {seconds}
    while time.monotonic() < end:
        try:
            model.fit(x, labels, batch_size=n, epochs=1, shuffle=False, verbose=0)
            fits += 1
        except ValueError as e:   # a bad label seen: refused, never read
            assert "labels" in str(e) or "'y'" in str(e) or "y must" in str(e), e
            refused += 1
    stop = True
    thread.join()
    print("fits", fits, "refused", refused)
""")


def test_a_fit_whose_labels_another_thread_rewrites_never_crashes():
    # on the old binding (labels checked with the GIL held, read again by the kernel without it) this child
    # died of SIGSEGV within a second
    import cnn

    here = os.path.dirname(os.path.dirname(os.path.abspath(cnn.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here] + sys.path))
    proc = subprocess.run([sys.executable, "-c", WRITER.format(seconds=3)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"child exited with {proc.returncode}: {proc.stderr[-2000:]}"
    fits, refused = (int(v) for v in proc.stdout.split()[1::2])
    assert fits + refused >= 3, proc.stdout
