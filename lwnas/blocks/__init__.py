"""The block library. Importing a family module registers its block types in BLOCKS."""
from .registry import BLOCKS, Param, register  # noqa: F401
from . import common, micronet, shufflenet, fasternet, mobilenetv3, asymmnet, mobileone  # noqa: F401,E402
from .mobileone import reparameterize  # noqa: F401,E402
