"""What only a GPU can show: every pool, AMP training steps, resume and k-NN on CUDA (``pytest -m cuda``).

They skip without CUDA; ``benchmarks/gpu_check.py`` runs them on a GPU machine.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from simpool import create_pool, list_pools
from simpool.evaluate.knn import knn_classify
from simpool.train.distributed import DistInfo
from simpool.train.engine import Engine
from simpool.train.recipe import CrossEntropyRecipe, Loop
from simpool.train.run import RunFolder
from tests.pooling.pool_kwargs import tiny_kwargs

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture
def no_tf32():
    """Full float32 on CUDA (matmuls and cuDNN convolutions) while a test compares CUDA with the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("name", list_pools())
@pytest.mark.parametrize("layout", ["map", "tokens"])
def test_every_pool_forward_and_backward_on_cuda_match_the_cpu(name, layout, no_tf32):
    torch.manual_seed(0)
    pool = create_pool(name, 16, **tiny_kwargs(name)).eval()  # probing heads: heads and queries that divide 16
    x = torch.randn(2, 16, 5, 5) if layout == "map" else torch.randn(2, 25, 16)
    outputs = {}
    for device in ("cpu", "cuda"):
        module = copy.deepcopy(pool).to(device)
        inputs = x.to(device).requires_grad_(True)
        out = module(inputs)
        out.float().sum().backward()
        outputs[device] = (out.detach().cpu(), inputs.grad.cpu())
    torch.testing.assert_close(outputs["cuda"][0], outputs["cpu"][0], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(outputs["cuda"][1], outputs["cpu"][1], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_amp_training_steps_through_the_engine_lower_the_loss(amp):
    from simpool import create_model

    torch.manual_seed(0)
    model = create_model("resnet10t", pool="simpool", num_classes=2).cuda()
    x, y = torch.randn(8, 3, 32, 32, device="cuda"), torch.tensor([0, 1] * 4, device="cuda")
    x[y == 1] += 1.0  # separable
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    engine = Engine(CrossEntropyRecipe(model, optimizer, [(x, y, 0)] * 5, clip_grad=1.0), Loop(amp=amp, log_every=1))
    assert (engine.scaler is not None) == (amp == "fp16")
    first = engine.run()["train_loss"]
    later = Engine(
        CrossEntropyRecipe(model, optimizer, [(x, y, 0)] * 5, epochs=2, clip_grad=1.0), Loop(amp=amp, log_every=1)
    )
    last = later.run()["train_loss"]
    assert last < first and later.last_loss == later.last_loss  # finite


def test_resume_on_cuda_keeps_the_rng_on_the_cpu_and_the_state_on_the_gpu(tmp_path):
    cuda = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cuda"))
    x, y = torch.randn(4, 6, device="cuda"), torch.tensor([0, 1, 2, 0], device="cuda")

    def run(max_updates: int):
        torch.manual_seed(0)
        model = torch.nn.Linear(6, 3).cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
        recipe = CrossEntropyRecipe(model, optimizer, [(x, y, 0)] * 4)
        Engine(recipe, Loop(max_updates=max_updates, progress=False), cuda, RunFolder(tmp_path / "run")).run()
        return model, optimizer

    run(max_updates=2)
    model, optimizer = run(max_updates=0)
    state = optimizer.state[next(iter(model.parameters()))]
    assert state["exp_avg"].device.type == "cuda"
    torch.manual_seed(0)
    reference = torch.nn.Linear(6, 3).cuda()
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=0.1)
    for _ in range(4):
        F.cross_entropy(reference(x), y).backward()
        ref_opt.step()
        ref_opt.zero_grad()
    torch.testing.assert_close(model.weight, reference.weight)


def test_knn_on_cuda_equals_the_cpu():
    torch.manual_seed(0)
    train, test = torch.randn(500, 32), torch.randn(100, 32)
    train_labels, test_labels = torch.randint(0, 5, (500,)), torch.randint(0, 5, (100,))
    cpu = knn_classify(train, train_labels, test, test_labels, k=20)
    gpu = knn_classify(train.cuda(), train_labels.cuda(), test.cuda(), test_labels.cuda(), k=20)
    assert gpu == pytest.approx(cpu)


def test_the_dino_loss_on_cuda_under_bf16_autocast_and_tf32_equals_the_cpu_in_float32():
    """The training configuration (TF32 on, bf16 autocast) does not reach the loss (elementwise, float32)."""
    from simpool.train.dino.loss import DINOLoss

    torch.manual_seed(0)
    student, teacher = torch.randn(8 * 16, 65536), torch.randn(2 * 16, 65536)  # (V * B, K), (G * B, K)
    results = {}
    for device in ("cpu", "cuda"):
        inputs = student.to(device).requires_grad_(True)
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = DINOLoss(65536, 8).to(device)(inputs, teacher.to(device), epoch=0)
        torch.backends.cuda.matmul.allow_tf32 = saved
        loss.backward()
        results[device] = (loss.item(), inputs.grad.cpu())
    assert abs(results["cuda"][0] - results["cpu"][0]) / abs(results["cpu"][0]) < 1e-5
    grad_error = (results["cuda"][1] - results["cpu"][1]).abs().max() / results["cpu"][1].abs().max()
    assert grad_error.item() < 1e-4
