"""The optional compiled part of the local engine and the directory store
(a_la_mode/_native.c). Where it cannot be built (no C compiler, no OpenSSL headers), the
install goes on without it and alamode does the same steps in Python."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("a_la_mode._native", ["a_la_mode/_native.c"], libraries=["crypto"], optional=True)
    ]
)
