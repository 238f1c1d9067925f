"""Package layout: the repository's top-level converters/ and experiments/ install as
jaxinv.converters and jaxinv.experiments (metadata and dependencies are in setup.cfg)."""

from setuptools import find_packages, setup

_MOVED = ("converters", "experiments")

packages = find_packages(include=["jaxinv", "jaxinv.*"])
package_dir = {}
for top in _MOVED:
  for pkg in find_packages(include=[top, f"{top}.*"]):
    packages.append(f"jaxinv.{pkg}")
  package_dir[f"jaxinv.{top}"] = top

setup(packages=packages, package_dir=package_dir)
