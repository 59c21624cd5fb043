"""What breaks silently or hangs on 8 GPUs, shown on the CPU: SyncBatchNorm keeping timm's activations, a NaN never
saved as the resume point, validation on the bare module, per-tensor clipping, and (two gloo processes) an empty
first micro-batch on one rank and an epoch's short last accumulation."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from simpool.train.checkpointing import load_state
from simpool.train.engine import Engine, clip_per_tensor, convert_sync_batchnorm
from simpool.train.recipe import CrossEntropyRecipe, Loop
from simpool.train.run import RunFolder


def test_sync_batchnorm_keeps_the_activation_of_timms_batchnorm_act():
    import timm
    from timm.layers import BatchNormAct2d

    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", num_classes=0).eval()
    acts = sum(isinstance(m, BatchNormAct2d) and not isinstance(m.act, nn.Identity) for m in model.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        converted = convert_sync_batchnorm(model).eval()  # eval: no synchronisation, runs on the CPU
        after = converted(x)
    assert acts > 5 and not any(type(m) is nn.BatchNorm2d for m in converted.modules())
    torch.testing.assert_close(after, before, rtol=0, atol=0)  # torch's converter: 0.5 apart (SiLUs dropped)


class Saving(CrossEntropyRecipe):
    """SGD on one fixed batch; ``poison_at``: the weight turns NaN after that update."""

    def __init__(self, poison_at: int, **parts):
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        self.x, self.y = torch.randn(4, 4), torch.tensor([0, 1, 0, 1])
        super().__init__(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            [(self.x, self.y, 0)] * parts["updates_per_epoch"],
            **parts,
        )
        self.poison_at = poison_at

    def after_update(self, update):
        if update == self.poison_at:
            with torch.no_grad():
                self.model.weight[0, 0] = float("nan")


@pytest.mark.parametrize(
    "where, loop, parts",
    [
        ("mid-epoch save", dict(checkpoint_every=1), dict(updates_per_epoch=4)),
        ("max-updates save", dict(max_updates=2), dict(updates_per_epoch=4)),
        ("epoch-end save", dict(), dict(updates_per_epoch=2, epochs=2)),
    ],
)
def test_a_nan_weight_never_becomes_the_resume_point(tmp_path, where, loop, parts):
    folder = RunFolder(tmp_path / "run")
    recipe = Saving(poison_at=2, **parts)
    engine = Engine(recipe, Loop(progress=False, log_every=100, **loop), folder=folder)
    with pytest.raises(FloatingPointError, match="not finite at update 2"):
        engine.run()
    if where == "mid-epoch save":  # update 1's finite state stays the resume point
        saved = load_state(folder.last_state)
        assert saved["update"] == 1 and torch.isfinite(saved["model"]["weight"]).all()
    else:
        assert not folder.last_state.exists()  # the first save would have been update 2's NaN


class Wrapper(nn.Module):
    """What ``torch.compile`` returns, for the test: a module around the model."""

    def __init__(self, module):
        super().__init__()
        self._orig_mod = module

    def forward(self, x):
        return self._orig_mod(x)


def test_validation_gets_the_bare_module_and_the_compiled_wrapper_trains_again(monkeypatch):
    seen = []

    class Validating(CrossEntropyRecipe):
        def end_epoch(self, epoch, row, model):
            seen.append(model)
            model.eval()  # as validation does

    monkeypatch.setattr(torch, "compile", Wrapper)
    x, y = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    model = nn.Linear(2, 2)
    engine = Engine(Validating(model, torch.optim.SGD(model.parameters(), lr=0.1), [(x, y, 0)]), Loop(compile=True))
    engine.run()
    assert isinstance(engine.model, Wrapper) and seen == [model]
    assert engine.model.training and model.training


def test_per_tensor_clipping_rescales_each_gradient_as_dino():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3, bias=False))
    grads = [torch.randn_like(p) * scale for p, scale in zip(model.parameters(), (10.0, 0.01, 3.0), strict=True)]
    for param, grad in zip(model.parameters(), grads, strict=True):
        param.grad = grad.clone()
    clip_per_tensor(model, 1.0)
    for param, grad in zip(model.parameters(), grads, strict=True):  # DINO's utils.clip_gradients
        expected = grad * min(1.0, 1.0 / (grad.norm(2).item() + 1e-6))
        torch.testing.assert_close(param.grad, expected, rtol=1e-6, atol=1e-7)


def test_ddp_broadcast_buffers_comes_from_the_train_section():
    from simpool.train.config import LoopConfig

    assert Loop.from_config(LoopConfig(ddp_broadcast_buffers=False)).ddp_broadcast_buffers is False
    assert Loop().ddp_broadcast_buffers is True  # DDP's default


SCRIPT = """
import json, sys, torch
import torch.nn.functional as F
from torch import nn
from simpool.train.distributed import cleanup, init_distributed
from simpool.train.engine import Engine
from simpool.train.recipe import CrossEntropyRecipe, Loop
from simpool.train.run import RunFolder

def train(info, micro, loop, **parts):
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    recipe = CrossEntropyRecipe(model, torch.optim.SGD(model.parameters(), lr=0.5), micro, **parts)
    engine = Engine(recipe, Loop(progress=False, **loop), info)
    engine.run()
    return engine, model

def main():  # DDP inside a function: gone before cleanup (see distributed.cleanup)
    info = init_distributed("cpu", timeout_s=60)
    r, out = info.rank, {}
    torch.manual_seed(1)
    x, y = torch.randn(12, 6), torch.randint(0, 3, (12,))
    # each rank its half of three global micro-batches of 4; accumulation 2: the epoch's last update has one
    halves = [(x[i * 4 + 2 * r : i * 4 + 2 * r + 2], y[i * 4 + 2 * r : i * 4 + 2 * r + 2], 0) for i in range(3)]
    engine, model = train(info, halves, dict(accum_steps=2, ddp_broadcast_buffers=False), updates_per_epoch=2)
    out["short_last"] = model.weight.tolist()
    out["broadcast_buffers"] = engine.model.broadcast_buffers
    # rank 1's first micro-batch has no readable image: rank 0's stands in with weight 0
    empty = (torch.empty(0), torch.empty(0, dtype=torch.long), 2)
    mine = [(x[:2], y[:2], 0), (x[2:4], y[2:4], 0)] if r == 0 else [empty, (x[4:6], y[4:6], 0)]
    engine, model = train(info, mine, {})
    out["empty_first"] = model.weight.tolist()
    # rank 1's weight turns NaN after update 2: both raise, last.pt stays update 1's
    def poison(engine):
        if engine.counters.update == 2 and r == 1:
            with torch.no_grad():
                engine.module.weight[0, 0] = float("nan")
    Engine.update_hooks = (poison,)
    try:
        torch.manual_seed(0)
        model = nn.Linear(6, 3)
        recipe = CrossEntropyRecipe(model, torch.optim.SGD(model.parameters(), lr=0.5), [(x, y, 0)] * 4)
        Engine(recipe, Loop(progress=False, checkpoint_every=1), info, RunFolder(sys.argv[1] + "/run")).run()
        out["nan"] = "not raised"
    except FloatingPointError as error:
        out["nan"] = str(error)
    Engine.update_hooks = ()
    with open(f"{sys.argv[1]}/rank{r}.json", "w") as file:
        json.dump(out, file)

main()
cleanup()
"""


@pytest.mark.slow
def test_two_ranks_agree_on_empty_first_batches_short_accumulations_and_nan_saves(tmp_path, torchrun):
    script = tmp_path / "ranks.py"
    script.write_text(textwrap.dedent(SCRIPT))
    result = torchrun(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    torch.manual_seed(1)
    x, y = torch.randn(12, 6), torch.randint(0, 3, (12,))

    def alone(batches, scales):
        """One process: SGD(0.5) updates, each the sum of its (rows, loss scale) terms."""
        torch.manual_seed(0)
        model = nn.Linear(6, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for rows_list, scale_list in zip(batches, scales, strict=True):
            for rows, scale in zip(rows_list, scale_list, strict=True):
                (F.cross_entropy(model(x[rows]), y[rows]) * scale).backward()
            optimizer.step()
            optimizer.zero_grad()
        return model.weight.detach()

    # the same global batches in one process: micro-batches of 4, accumulation 2, the last update has one
    short = alone([[slice(0, 4), slice(4, 8)], [slice(8, 12)]], [[0.5, 0.5], [0.5]])
    # update 1: rank 0's gradient averaged with rank 1's zero stand-in; update 2: both ranks' halves
    empty = alone([[slice(0, 2)], [slice(2, 6)]], [[0.5], [1.0]])
    for out in ranks:
        torch.testing.assert_close(torch.tensor(out["short_last"]), short, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(out["empty_first"]), empty, rtol=1e-5, atol=1e-6)
        assert out["broadcast_buffers"] is False
        assert "not finite at update 2" in out["nan"]
    saved = load_state(tmp_path / "run" / "last.pt")
    assert saved["update"] == 1 and torch.isfinite(saved["model"]["weight"]).all()
