"""Build of the one compiled kernel; everything else is declared in pyproject.toml.

``simpool.evaluate._level_sets`` (MaxBoxAccV2's component boxes of every threshold in one pass) is
optional: without a C compiler the install still succeeds and MaxBoxAccV2 falls back to OpenCV, with
the same numbers, slower (5x at the paper's 1,000 thresholds).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "simpool.evaluate._level_sets",
            sources=["simpool/evaluate/_level_sets.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
