"""Map this folder to the package portsuite_services, with every subpackage found."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).resolve().parent
subpackages = find_packages(str(here), exclude=["build", "build.*", "*.egg-info"])
setup(
    packages=["portsuite_services", *(f"portsuite_services.{p}" for p in subpackages)],
    package_dir={"portsuite_services": "."},
)
