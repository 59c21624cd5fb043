"""The checks of ``benchmarks/gpu_check.py``, one module per kind (training, distributed, data, evaluation).

Every check is ``check(smoke, device) -> dict`` whose ``summary`` is one line of what was measured and
``for_8_gpus`` one line of what it means for an 8-GPU ImageNet run; the rest of the dict is every figure.
"""
