"""The compiled sampling loop (rnnkit/_csample.c); everything else about the package is in pyproject.toml.

The extension is optional: where it cannot be built (no C compiler), rnnkit installs without it and
samples on the NumPy stepper, which gives the same text (rnnkit.fastsample.compiled() says which)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("rnnkit._csample", ["rnnkit/_csample.c"], depends=["rnnkit/_csample_kernels.h"],
                             extra_compile_args=["-O3", "-std=c11", "-ffp-contract=fast"], optional=True)])
