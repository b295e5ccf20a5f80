"""Build plumbing for the Cython kernels only; metadata lives in pyproject.toml.

``pip install .`` / ``pip install -e .`` (or ``python setup.py build_ext
--inplace``) compiles every ``fastnn/_kernels/*.pyx`` into its own extension
with one set of Cython directives. ``FASTNN_CYTHON_DEBUG=1`` at build time
gives a debug build: bounds, wraparound and initialisation checks on, ``-O0
-g``, and ``DEBUG_BUILD`` true in ``fastnn._kernels._dense``. Switching between
the two modes forces a full rebuild (see ``_note_build_mode``).

The release build uses ``-O3`` without ``-march`` (the wheel must run on any
CPU of its platform) and without ``-ffast-math`` (NaN/Inf checks must hold);
``-ffp-contract=off`` keeps the elementwise arithmetic rounded exactly as
NumPy's reference does it (no fused multiply-adds); ``-fno-math-errno`` (no
errno from ``sqrt`` of a negative number: the result, NaN, is the same) and
``-fno-trapping-math`` (fastnn never enables floating-point traps: results
are the same, only the exception flags may differ) let GCC vectorise the
optimizers' loops (``_optim_core.h``: square roots and selects scalar
otherwise, an Adam update 4.5x slower).
The SGD update's C core (``fastnn/_kernels/_sgd_core.h``, a dependency of
every extension) adds an AVX2 copy of its loops through a function attribute,
chosen at run time on CPUs that have AVX2, so the build itself stays at the
baseline. BLAS comes from SciPy
(``scipy.linalg.cython_blas``), so there is nothing to link and no OpenMP.

The extensions are optional, as PyYAML's and msgpack's C speedups are: without
a working C compiler (or the Python headers) the install still succeeds, with a
warning, and the ``cython`` backend reports itself unavailable with the
compiler's error (recorded in ``fastnn/_kernels/BUILD_SKIPPED.txt``); the
``numpy`` and ``numba`` backends work. ``CI`` or ``FASTNN_REQUIRE_CYTHON`` set
to a true value makes a failed compile fail the build instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

KERNELS_DIR = Path("fastnn", "_kernels")
DEBUG_ENV = "FASTNN_CYTHON_DEBUG"
#: Written beside the extensions when they could not be compiled.
SKIPPED_NAME = "BUILD_SKIPPED.txt"
_TRUE = {"1", "true", "yes", "on"}
#: Rewritten when the build mode changes; every extension depends on it.
MODE_FILE = Path("build", "fastnn-cython-mode.txt")


def debug_build(environ=os.environ) -> bool:
    """Whether ``FASTNN_CYTHON_DEBUG`` asks for a debug build."""
    return environ.get(DEBUG_ENV, "").strip().lower() in _TRUE


def cython_required(environ=os.environ) -> bool:
    """Whether a failed compile must fail the build (``CI`` or
    ``FASTNN_REQUIRE_CYTHON`` true), rather than leave ``cython`` unbuilt."""
    return any(
        environ.get(name, "").strip().lower() in _TRUE
        for name in ("CI", "FASTNN_REQUIRE_CYTHON")
    )


class OptionalBuildExt(build_ext):
    """``build_ext`` that, without a working C compiler, warns and goes on.

    Any extension failing to compile leaves the ``cython`` backend unbuilt
    (none of its extensions is installed: they are one backend) and records
    why in ``BUILD_SKIPPED.txt``, which the backend quotes when it is asked
    for; a successful build removes that file.
    """

    _ERRORS = (CCompilerError, ExecError, PlatformError, OSError)

    def _skipped_file(self) -> Path:
        ext = self.extensions[0]
        return Path(self.get_ext_fullpath(ext.name)).parent / SKIPPED_NAME

    def run(self):
        inplace = self.inplace  # setuptools clears it while building
        try:
            super().run()
        except self._ERRORS as err:
            self.inplace = inplace
            if cython_required():
                raise
            self._skip(err)
        else:
            self._skipped_file().unlink(missing_ok=True)

    def _skip(self, err) -> None:
        for ext in self.extensions:  # none or all: a partial backend is none
            Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
        reason = f"{type(err).__name__}: {err}".strip()
        path = self._skipped_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason + "\n")
        bar = "*" * 72
        sys.stderr.write(
            f"\n{bar}\nWARNING: fastnn's Cython extensions could not be compiled "
            f"({reason}).\nfastnn is installed without its 'cython' backend; "
            "'numpy' and 'numba' work.\nTo build it, install a C compiler and "
            "the Python headers (Debian/Ubuntu: apt install gcc python3-dev) "
            f"and reinstall.\n{bar}\n\n"
        )


def compiler_directives(debug: bool) -> dict:
    """The one set of Cython directives, for every extension."""
    return {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "cdivision": True,
    }


def compile_args(debug: bool, platform: str = sys.platform) -> list[str]:
    if platform == "win32":  # MSVC
        return ["/Od", "/Zi"] if debug else ["/O2"]
    flags = ["-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
    if debug:
        return flags + ["-O0", "-g"]
    return flags + ["-O3", "-funroll-loops"]


def _note_build_mode(debug: bool) -> bool:
    """Record the build mode; True when it differs from the previous build.

    Cython and setuptools rebuild on timestamps only, so without this a debug
    build after a release build would quietly reuse the release objects.
    """
    mode = "debug" if debug else "release"
    try:
        previous = MODE_FILE.read_text().strip()
    except OSError:
        previous = None
    if previous != mode:
        MODE_FILE.parent.mkdir(parents=True, exist_ok=True)
        MODE_FILE.write_text(mode + "\n")
    return previous is not None and previous != mode


def extensions(debug: bool) -> list[Extension]:
    import numpy
    from Cython.Build import cythonize

    changed = _note_build_mode(debug)
    modules = [
        Extension(
            f"fastnn._kernels.{pyx.stem}",
            [str(pyx)],
            include_dirs=[numpy.get_include()],
            define_macros=[
                ("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION"),
                ("FASTNN_DEBUG_BUILD", "1" if debug else "0"),
            ],
            extra_compile_args=compile_args(debug),
            depends=[str(MODE_FILE), *map(str, sorted(KERNELS_DIR.glob("*.h")))],
        )
        for pyx in sorted(KERNELS_DIR.glob("*.pyx"))
    ]
    return cythonize(
        modules,
        compiler_directives=compiler_directives(debug),
        force=changed,
        quiet=True,
    )


# setuptools' PEP 517 backend and ``python setup.py`` both run this file as
# __main__; the tests import it for the helpers above without building.
if __name__ == "__main__":
    setup(
        ext_modules=extensions(debug_build()),
        cmdclass={"build_ext": OptionalBuildExt},
    )
