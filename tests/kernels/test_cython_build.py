"""The Cython backend's build: setup.py's modes, and refusing stale builds.

The kernels' numerics are covered by the shared equivalence suite
(``contract/test_equivalence.py``, over every compiled backend); this file checks the
plumbing around them without touching the real build: stale sources and API
mismatches are simulated on copies in ``tmp_path``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.backends import load_backend_or_skip
from support.child import run_program

ROOT = Path(__file__).resolve().parents[2]
KERNELS = ROOT / "fastnn" / "_kernels"
EXTENSIONS = ("_dense", "_gemm", "_loss", "_train", "_update")


def _load_setup_py():
    """setup.py as a module, without building (it builds only as __main__)."""
    spec = importlib.util.spec_from_file_location("fastnn_setup_py", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup_py():
    return _load_setup_py()


@pytest.fixture
def cython_backend():
    return load_backend_or_skip("cython")


def _copy_sources(dest: Path, mtime: float) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for source in [
        *KERNELS.glob("*.pyx"),
        *KERNELS.glob("*.pxd"),
        *KERNELS.glob("*.h"),
    ]:
        shutil.copy(source, dest / source.name)
        os.utime(dest / source.name, (mtime, mtime))


# --------------------------------------------------------------------------- #
# setup.py: one set of directives, a debug switch
# --------------------------------------------------------------------------- #
def test_release_directives_turn_checks_off(setup_py):
    assert setup_py.compiler_directives(debug=False) == {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "initializedcheck": False,
        "cdivision": True,
    }


def test_debug_directives_turn_checks_on(setup_py):
    directives = setup_py.compiler_directives(debug=True)
    assert directives["boundscheck"] is True
    assert directives["wraparound"] is True
    assert directives["initializedcheck"] is True
    assert directives["language_level"] == 3


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, False),
        ({"FASTNN_CYTHON_DEBUG": ""}, False),
        ({"FASTNN_CYTHON_DEBUG": "0"}, False),
        ({"FASTNN_CYTHON_DEBUG": "1"}, True),
        ({"FASTNN_CYTHON_DEBUG": "true"}, True),
    ],
)
def test_debug_switch_reads_the_environment(setup_py, environ, expected):
    assert setup_py.debug_build(environ) is expected


def test_release_flags_are_portable_and_keep_ieee(setup_py):
    flags = setup_py.compile_args(debug=False, platform="linux")
    assert "-O3" in flags
    assert "-ffp-contract=off" in flags
    assert not any(f.startswith(("-march", "-mtune", "-ffast-math")) for f in flags)
    assert not any("openmp" in f for f in flags)


def test_debug_flags_disable_optimisation(setup_py):
    flags = setup_py.compile_args(debug=True, platform="linux")
    assert "-O0" in flags and "-g" in flags
    assert "-O3" not in flags


def test_switching_build_mode_forces_a_rebuild(setup_py, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MODE_FILE is relative to the source root
    assert setup_py._note_build_mode(debug=False) is False  # first build
    assert setup_py._note_build_mode(debug=False) is False  # same mode again
    assert setup_py._note_build_mode(debug=True) is True  # release -> debug
    assert (tmp_path / setup_py.MODE_FILE).read_text().strip() == "debug"
    assert setup_py._note_build_mode(debug=False) is True  # and back


def test_every_pyx_becomes_an_extension():
    assert sorted(p.stem for p in KERNELS.glob("*.pyx")) == sorted(EXTENSIONS)


# --------------------------------------------------------------------------- #
# The built backend
# --------------------------------------------------------------------------- #
def test_backend_loads_when_built(cython_backend):
    assert cython_backend.NAME == "cython"
    assert isinstance(cython_backend.DEBUG_BUILD, bool)
    for name in EXTENSIONS:
        module = sys.modules[f"fastnn._kernels.{name}"]
        assert module.KERNEL_API_VERSION == cython_backend.KERNEL_API_VERSION


def test_built_extensions_are_newer_than_their_sources(cython_backend):
    if not cython_backend._is_source_checkout():
        pytest.skip("installed package: no sources to compare with")
    for name in EXTENSIONS:
        origin = Path(sys.modules[f"fastnn._kernels.{name}"].__file__)
        sources = [KERNELS / s for s in cython_backend._SOURCES[name]]
        assert cython_backend._stale_reason(origin, sources) is None


# --------------------------------------------------------------------------- #
# Missing, stale and mismatched builds are refused with a fix
# --------------------------------------------------------------------------- #
def test_stale_extension_is_refused(cython_backend, tmp_path):
    kernels = tmp_path / "fastnn" / "_kernels"
    _copy_sources(kernels, mtime=time.time() + 3600)  # edited after the build
    with pytest.raises(ImportError) as info:
        cython_backend._load_extension(
            "_dense", kernels_dir=kernels, source_checkout=True
        )
    message = str(info.value)
    assert "stale" in message
    assert "is older than its source _dense.pyx" in message
    assert "pip install -e ." in message


def test_edited_pxd_makes_its_dependents_stale(cython_backend, tmp_path):
    kernels = tmp_path / "fastnn" / "_kernels"
    _copy_sources(kernels, mtime=0)  # sources older than any build
    later = time.time() + 3600
    os.utime(kernels / "_update.pxd", (later, later))
    cython_backend._load_extension("_dense", kernels_dir=kernels, source_checkout=True)
    with pytest.raises(ImportError, match="older than its source _update.pxd"):
        cython_backend._load_extension(
            "_train", kernels_dir=kernels, source_checkout=True
        )


def test_installed_package_skips_the_timestamp_check(cython_backend, tmp_path):
    kernels = tmp_path / "fastnn" / "_kernels"
    _copy_sources(kernels, mtime=time.time() + 3600)
    module = cython_backend._load_extension(
        "_dense", kernels_dir=kernels, source_checkout=False
    )
    assert module.KERNEL_API_VERSION == cython_backend.KERNEL_API_VERSION


def test_api_version_mismatch_is_refused(cython_backend):
    expected = cython_backend.KERNEL_API_VERSION + 1
    with pytest.raises(ImportError) as info:
        cython_backend._load_extension("_dense", expected_version=expected)
    message = str(info.value)
    assert f"implements kernel API version {expected - 1}" in message
    assert f"expects version {expected}" in message
    assert "pip install" in message


def test_missing_extension_is_refused(cython_backend):
    with pytest.raises(ImportError) as info:
        cython_backend._load_extension("_no_such_kernel", source_checkout=False)
    message = str(info.value)
    assert "fastnn._kernels._no_such_kernel is not built" in message
    assert "pip install ." in message


def test_importing_the_backend_from_a_stale_checkout_fails(cython_backend, tmp_path):
    """The module itself refuses to import (the registry turns this into a
    BackendUnavailableError): a copy of it in a fake source checkout whose
    sources are newer than the real, built extensions."""
    kernels = tmp_path / "fastnn" / "_kernels"
    _copy_sources(kernels, mtime=time.time() + 3600)
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    shutil.copy(KERNELS / "cython_backend.py", kernels / "cython_backend.py")
    spec = importlib.util.spec_from_file_location(
        "fastnn_cython_backend_copy", kernels / "cython_backend.py"
    )
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError) as info:
        spec.loader.exec_module(module)
    message = str(info.value)
    assert "fastnn._kernels._dense is stale" in message
    root = tmp_path.resolve()
    assert f"rebuild them from the source checkout {root}: pip install -e ." in message


# --------------------------------------------------------------------------- #
# A real debug build (slow: compiles one extension at -O0)
# --------------------------------------------------------------------------- #
def _one_extension_tree(root: Path) -> Path:
    """A source tree under ``root`` with setup.py and only the ``_dense``
    extension's sources (quick to build); returns its kernels folder."""
    kernels = root / "fastnn" / "_kernels"
    kernels.mkdir(parents=True)
    for name in ("__init__.py", "_common.pxd", "_dense.pxd", "_dense.pyx", "_sgemm.h"):
        shutil.copy(KERNELS / name, kernels / name)
    (root / "fastnn" / "__init__.py").write_text("")
    shutil.copy(ROOT / "setup.py", root / "setup.py")
    return kernels


@pytest.mark.slow
def test_debug_build_checks_bounds(tmp_path):
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler")
    kernels = _one_extension_tree(tmp_path)
    env = {**os.environ, "FASTNN_CYTHON_DEBUG": "1"}
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    (built,) = kernels.glob("_dense.*.so") or kernels.glob("_dense.*.pyd")
    # In a fresh interpreter (the release build is not imported there): an
    # output buffer too short for its stated shape is caught, not overrun.
    result = run_program("cython_debug_bounds", built, cwd=tmp_path, path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------- #
# Without a C compiler: installed without the cython backend, saying why
# --------------------------------------------------------------------------- #
def _build_without_compiler(tmp_path, **env):
    kernels = _one_extension_tree(tmp_path)
    base = {
        k: v for k, v in os.environ.items() if k not in ("CI", "FASTNN_REQUIRE_CYTHON")
    }
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=tmp_path,
        env={**base, "CC": "/bin/false", "LDSHARED": "/bin/false", **env},
        capture_output=True,
        text=True,
    )
    return result, kernels


@pytest.mark.slow
def test_no_compiler_installs_without_cython_and_says_why(tmp_path, cython_backend):
    result, kernels = _build_without_compiler(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "WARNING: fastnn's Cython extensions could not be compiled" in result.stderr
    assert "apt install gcc python3-dev" in result.stderr
    assert not list(kernels.glob("_dense.*.so")) + list(kernels.glob("_dense.*.pyd"))
    reason = (kernels / "BUILD_SKIPPED.txt").read_text()
    assert "CompileError" in reason or "exit status" in reason, reason
    # The backend's error quotes it.
    with pytest.raises(ImportError) as info:
        cython_backend._load_extension(
            "_no_such_kernel", kernels_dir=kernels, source_checkout=False
        )
    assert f"the C compiler failed at install ({reason.strip()})" in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["CI", "FASTNN_REQUIRE_CYTHON"])
def test_no_compiler_fails_the_build_where_cython_is_required(tmp_path, variable):
    result, kernels = _build_without_compiler(tmp_path, **{variable: "true"})
    assert result.returncode != 0
    assert "WARNING" not in result.stderr
    assert not (kernels / "BUILD_SKIPPED.txt").exists()


def test_cython_required_reads_the_environment(setup_py):
    assert setup_py.cython_required({"CI": "true"})
    assert setup_py.cython_required({"FASTNN_REQUIRE_CYTHON": "1"})
    assert not setup_py.cython_required({"CI": "0"})
    assert not setup_py.cython_required({})
