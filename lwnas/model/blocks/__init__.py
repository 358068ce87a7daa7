"""The block library. Importing a family module registers its block types in BLOCKS."""
from . import asymmnet, common, fasternet, micronet, mobilenetv3, mobileone, shufflenet  # noqa: F401,E402
from .mobileone import reparameterize  # noqa: F401,E402
from .registry import BLOCKS, Param, register  # noqa: F401
