"""Packaging metadata lives in pyproject.toml; this file only ships ``mmext-startup.pth`` (see mmext_startup.py).

A ``.pth`` file works only at the top of site-packages, which setuptools' ``data_files`` cannot reach and
``packages`` do not cover, so ``build_py`` copies it there: into the wheel's root for ``pip install .``, and into
the editable wheel's root for ``pip install -e .`` (setuptools >= 64 builds editable installs as wheels, with
``build_py.editable_mode`` set and ``install.install_lib`` pointing at that wheel's unpacked root).
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

STARTUP_PTH = 'mmext-startup.pth'


class BuildPyWithStartupHook(build_py):
    """``build_py`` that also puts ``mmext-startup.pth`` at the root of the (editable) wheel."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            root = self.distribution.get_command_obj('install').install_lib
        else:
            root = self.build_lib
        self.copy_file(str(Path(__file__).parent / STARTUP_PTH), str(Path(root, STARTUP_PTH)))


setup(cmdclass={'build_py': BuildPyWithStartupHook})
