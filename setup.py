"""The optional compiled parts: the local engine's and the directory store's per-task work
(a_la_mode/_native.c), and the plan reader (a_la_mode/_planread.c). Where they cannot be
built (no C compiler, no OpenSSL headers), the install goes on without them and alamode does
the same steps in Python."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            f"a_la_mode.{name}",
            [f"a_la_mode/{name}.c"],
            depends=["a_la_mode/_sha256.h"],
            libraries=["crypto"],
            optional=True,
        )
        for name in ("_native", "_planread")
    ]
)
