"""Installed package versions, recorded beside every output."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:  # e.g. run from a checkout on PYTHONPATH, or an SDK not installed
        return None
