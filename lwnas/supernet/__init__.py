"""Weight-sharing supernet over a search space (SPOS choice blocks with Once-for-All-style slicing)."""
from .network import Subnet, Supernet, SupernetError
from .sharing import SHARING

__all__ = ["SHARING", "Subnet", "Supernet", "SupernetError"]
