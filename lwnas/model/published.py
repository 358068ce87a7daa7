"""Published ImageNet numbers of the named configs: the reference a user compares us against.

Multiply-adds ("FLOPs"/"MAdds" in the papers) and parameters at 224x224, top-1 in percent; None where
the source publishes no number. The counts here are what papers print, never what lwnas computes:
tests/test_published.py checks lwnas.count against them."""
from __future__ import annotations

from typing import NamedTuple

MICRONET = "liyunsheng13/micronet README (arXiv 2108.05894 Table 7)"
FASTERNET = "JierunChen/FasterNet README (arXiv 2303.03667 Table 1)"
MOBILEONE = "arXiv 2206.04040 Table 8; top-1 apple/ml-mobileone README"
SHUFFLE_V1_REPO = "megvii-model/ShuffleNet-Series ShuffleNetV1 README"
SHUFFLE_V1_PAPER = "arXiv 1707.01083 Table 2 (1x, complexity and top-1 error)"
SHUFFLE_V2 = "megvii-model/ShuffleNet-Series ShuffleNetV2 README"
MOBILENETV3 = "arXiv 1905.02244 Table 3"
ASYMMNET = "arXiv 2104.07770 Table 3; Large 1.0x exact counts from Spark001/AsymmNet checkpoints/macc.txt"


class Published(NamedTuple):
    madds: float
    params: float | None
    top1: float | None
    source: str


PUBLISHED: dict[str, Published] = {
    "micronet_m0": Published(4e6, 1.0e6, 46.6, MICRONET),
    "micronet_m1": Published(6e6, 1.8e6, 51.4, MICRONET),
    "micronet_m2": Published(12e6, 2.4e6, 59.4, MICRONET),
    "micronet_m3": Published(21e6, 2.6e6, 62.5, MICRONET),
    "fasternet_t0": Published(0.34e9, 3.9e6, 71.9, FASTERNET),
    "fasternet_t1": Published(0.85e9, 7.6e6, 76.2, FASTERNET),
    "fasternet_t2": Published(1.90e9, 15.0e6, 78.9, FASTERNET),
    "fasternet_s": Published(4.55e9, 31.1e6, 81.3, FASTERNET),
    "fasternet_m": Published(8.72e9, 53.5e6, 83.0, FASTERNET),
    "fasternet_l": Published(15.49e9, 93.4e6, 83.5, FASTERNET),
    "mobileone_s0": Published(275e6, 2.1e6, 71.4, MOBILEONE),
    "mobileone_s1": Published(825e6, 4.8e6, 75.9, MOBILEONE),
    "mobileone_s2": Published(1299e6, 7.8e6, 77.4, MOBILEONE),
    "mobileone_s3": Published(1896e6, 10.1e6, 78.1, MOBILEONE),
    "mobileone_s4": Published(2978e6, 14.8e6, 79.4, MOBILEONE),
    "shufflenet_v1_g1_x1_0": Published(143e6, None, 66.4, SHUFFLE_V1_PAPER),
    "shufflenet_v1_g2_x1_0": Published(140e6, None, 67.3, SHUFFLE_V1_PAPER),
    "shufflenet_v1_g3_x1_0": Published(138e6, 1.9e6, 67.8, SHUFFLE_V1_REPO),
    "shufflenet_v1_g4_x1_0": Published(133e6, None, 67.2, SHUFFLE_V1_PAPER),
    "shufflenet_v1_g8_x1_0": Published(138e6, 2.4e6, 68.0, SHUFFLE_V1_REPO),
    "shufflenet_v1_g3_x0_5": Published(38e6, 0.7e6, 57.3, SHUFFLE_V1_REPO),
    "shufflenet_v1_g3_x1_5": Published(292e6, 3.4e6, 71.6, SHUFFLE_V1_REPO),
    "shufflenet_v1_g3_x2_0": Published(524e6, 5.4e6, 74.1, SHUFFLE_V1_REPO),
    "shufflenet_v2_x0_5": Published(41e6, 1.4e6, 61.1, SHUFFLE_V2),
    "shufflenet_v2_x1_0": Published(146e6, 2.3e6, 69.4, SHUFFLE_V2),
    "shufflenet_v2_x1_5": Published(299e6, 3.5e6, 72.6, SHUFFLE_V2),
    "shufflenet_v2_x2_0": Published(591e6, 7.4e6, 75.0, SHUFFLE_V2),
    "mobilenetv3_large_x1_0": Published(219e6, 5.4e6, 75.2, MOBILENETV3),
    "mobilenetv3_small_x1_0": Published(56e6, 2.5e6, 67.4, MOBILENETV3),
    "asymmnet_large_x1_0": Published(216.92e6, 5.99e6, 75.4, ASYMMNET),
    "asymmnet_large_x0_5": Published(67.2e6, 2.8e6, 69.2, ASYMMNET),
    "asymmnet_small_x1_0": Published(57.7e6, 3.1e6, 68.4, ASYMMNET),
}
