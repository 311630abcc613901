"""Build the one C extension, cnn._core, from csrc/*.c.

-O3, NumPy's headers first, and OpenMP when a probe compiles with it; without OpenMP the same code
builds and runs single-threaded. No -march=native: gemm.c dispatches on the CPU at run time, so a
wheel runs on any x86-64. CNN_SANITIZE=1 builds with AddressSanitizer and UBSan (and -fno-wrapv) instead of -O3.
"""
import glob
import os
import tempfile

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def compiles(compiler, flags):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=flags)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        sanitize = os.environ.get("CNN_SANITIZE") == "1"
        # -fno-trapping-math and -fno-math-errno let element loops with selects (clamps, branch-free tanh) and
        # sqrt (Adam) vectorize; neither changes a value
        cflags = ["-std=gnu11", "-Wall", "-Wno-unknown-pragmas", "-fno-trapping-math", "-fno-math-errno"]
        # CPython's own flags (which come first) hold -fwrapv, which defines signed overflow and so hides it
        # from UBSan: the sanitizer build turns it back off (-fsanitize=undefined checks signed overflow)
        cflags += ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-wrapv", "-fsanitize=address,undefined"] if sanitize \
            else ["-O3"]
        ldflags = ["-fsanitize=address,undefined"] if sanitize else []
        if compiles(self.compiler, ["-fopenmp"]):
            cflags.append("-fopenmp")
            ldflags.append("-fopenmp")
        else:
            print("cnn: the compiler has no OpenMP; building single-threaded")
        for ext in self.extensions:
            ext.extra_compile_args = cflags
            ext.extra_link_args = ldflags
        super().build_extensions()


setup(
    ext_modules=[
        Extension(
            "cnn._core",
            sources=sorted(glob.glob("csrc/*.c")),
            depends=sorted(glob.glob("csrc/*.h")),
            include_dirs=[numpy.get_include(), "csrc"],
            define_macros=[("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")],
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
