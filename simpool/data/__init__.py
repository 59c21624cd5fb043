"""Datasets in their standard formats, transforms, and the SimPool bench."""

from .bench import VARIANTS as BENCH_VARIANTS
from .bench import BenchConfig, SimPoolBench
from .fashion_mnist import CLASSES as FASHION_MNIST_CLASSES
from .fashion_mnist import load_fashion_mnist

__all__ = ["BENCH_VARIANTS", "FASHION_MNIST_CLASSES", "BenchConfig", "SimPoolBench", "load_fashion_mnist"]
