"""lwnas: hardware-aware neural architecture search for lightweight image classifiers, on PaddlePaddle."""
import os
import warnings

# Paddle's C++ log (read once, when Paddle loads): errors only, without its PIR warnings and executor notes.
os.environ.setdefault("GLOG_minloglevel", "2")

# Paddle prints a ccache hint (relevant only when compiling custom ops) on every import.
warnings.filterwarnings("ignore", message="No ccache found")
# Paddle notes on every BatchNorm in training mode that running statistics are tracked; that is the intent.
warnings.filterwarnings("ignore", message="When training, we now always track global mean")

from .blocks import BLOCKS, reparameterize  # noqa: E402
from .build import Network, build
from .configs import config_names, get_config
from .cost import Cost, count, count_built
from .errors import LwnasError, SpecError
from .spec import ArchSpec, BlockSpec, StageSpec, load_spec

__all__ = ["ArchSpec", "BlockSpec", "StageSpec", "BLOCKS", "Cost", "LwnasError", "Network", "SpecError",
           "build", "config_names", "count", "count_built", "get_config", "load_spec", "reparameterize"]
__version__ = "0.1.0"
