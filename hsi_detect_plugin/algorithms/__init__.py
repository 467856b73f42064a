"""The provider's algorithms, one class per file."""

from .accuracy import AccuracyAlgorithm
from .bs3lnet import Bs3lnetAlgorithm
from .cva import CvaAlgorithm
from .hypernet import HypernetAlgorithm
from .rx import RxAlgorithm

ALGORITHMS = (HypernetAlgorithm, Bs3lnetAlgorithm, CvaAlgorithm, RxAlgorithm, AccuracyAlgorithm)
