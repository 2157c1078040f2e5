"""`import trecx` inside the checkout: the library in common/ under the name it installs as.

`pip install .` (or `-e .`) installs common/ as the package `trecx`, with the task folders inside it. In the
checkout, where common/ is imported as `common`, this alias makes `trecx.X` the very module `common.X`
(never a second copy, whose Keras classes and registries would be strangers to the first). This folder is
not part of the installed package (pyproject.toml maps `trecx` to common/).
"""

import importlib
import importlib.abc
import importlib.util
import sys

import common


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `trecx.<name>` as the already importable `common.<name>`."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith("trecx.") and sys.modules.get("trecx") is common:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return importlib.import_module("common" + spec.name[len("trecx"):])

    def exec_module(self, module):
        pass  # `common.<name>` ran already


sys.meta_path.insert(0, _Alias())
sys.modules[__name__] = common
