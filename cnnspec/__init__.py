"""cnnspec: declare a CNN in YAML, check every shape without a framework, compile it anywhere.

Importing this package loads no deep-learning framework; backends are imported only when used.
"""
from .api import Spec, load, loads
from .errors import CnnspecError, SpecError
from .version import __version__

__all__ = ["Spec", "load", "loads", "CnnspecError", "SpecError", "__version__"]
