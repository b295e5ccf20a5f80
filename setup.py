"""Build plumbing for the Cython kernels only; metadata lives in pyproject.toml."""

from setuptools import setup

setup()
