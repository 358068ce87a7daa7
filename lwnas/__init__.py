"""lwnas: hardware-aware neural architecture search for lightweight image classifiers, on PaddlePaddle.

The public API (`lwnas.build`, `lwnas.count`, `lwnas.get_config`, `lwnas.ArchSpec`, ...) is loaded on first use,
so that commands which never build a network (`lwnas --help`, `lwnas runs`) do not wait for Paddle to import.
"""
import importlib
import os
import warnings

# Paddle's C++ log (read once, when Paddle loads): errors only, without its PIR warnings and executor notes.
os.environ.setdefault("GLOG_minloglevel", "2")

# Paddle prints a ccache hint (relevant only when compiling custom ops) on every import.
warnings.filterwarnings("ignore", message="No ccache found")
# Paddle notes on every BatchNorm in training mode that running statistics are tracked; that is the intent.
warnings.filterwarnings("ignore", message="When training, we now always track global mean")

__version__ = "0.1.0"

_API = {  # public name -> the module that defines it (and its name there, where it differs)
    "BLOCKS": "lwnas.model.blocks", "reparameterize": "lwnas.model.blocks",
    "Network": "lwnas.model.build", "build": "lwnas.model.build",
    "config_names": "lwnas.model.configs", "get_config": "lwnas.model.configs",
    "Cost": "lwnas.model.cost", "count": ("lwnas.model.configs", "count_config"), "count_built": "lwnas.model.cost",
    "LwnasError": "lwnas.errors", "SpecError": "lwnas.errors",
    "ArchSpec": "lwnas.model.spec", "BlockSpec": "lwnas.model.spec", "StageSpec": "lwnas.model.spec",
    "load_spec": "lwnas.model.spec",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        module, attribute = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'lwnas' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
