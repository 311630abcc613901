#!/usr/bin/env bash
# Build cnn._core with AddressSanitizer and UBSan (setup.py's CNN_SANITIZE=1, which also drops CPython's
# -fwrapv so that UBSan sees signed overflow) into build/sanitize/, apart from the normal in-place build,
# and run the tests that do not load torch under it: the fuzz and memory tests and every torch-free test
# file (torch's own libraries clash with the ASan runtime).
# Any invalid access or undefined behaviour in the C code stops the run with a report and a failure.
#
#   tests/sanitize.sh                  # the default set
#   tests/sanitize.sh tests/test_x.py  # chosen tests (pytest arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/sanitize
rm -rf "$out"
CNN_SANITIZE=1 python3 setup.py -q build_py --build-lib "$out/lib" build_ext --force --build-lib "$out/lib" \
    --build-temp "$out/temp" 2>&1 | grep -iE "error|warning: " | grep -v Setuptools || true
so=$(ls "$out"/lib/cnn/_core*.so)

if [ $# -eq 0 ]; then
    # torch's libraries clash with the ASan runtime; matplotlib's C++ exceptions abort in its __cxa_throw hook,
    # and the notebooks' kernels (which inherit LD_PRELOAD) import matplotlib
    set -- $(grep -LE '^\s*(import torch|from torch|.*importorskip\("(torch|matplotlib)"\))' tests/test_*.py |
             grep -v test_notebooks.py)
fi

export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1  # CPython leaks by design at exit; a 28 TiB
                                                                 # request (Dense(2**40)) must be a MemoryError
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$PWD/$out/lib:$PWD/tests"
export CNN_SANITIZE=1                     # tests that cannot hold under ASan (RSS) skip themselves
python3 - "$so" <<'EOF'
import os, sys
import cnn._core
assert os.path.samefile(cnn._core.__file__, sys.argv[1]), f"{cnn._core.__file__} is not the sanitized build"
assert "torch" not in sys.modules
EOF
# --capture=sys: a sanitizer report goes to fd 2, which must reach the terminal, not a pytest capture file
python3 -m pytest -q -p no:cacheprovider --capture=sys "$@"
