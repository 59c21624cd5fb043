"""The one training loop: accumulation, empty batches, schedules, finiteness, resume sums, DDP behaviour."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from simpool.train.distributed import DistInfo
from simpool.train.engine import CLIP_MODES, Engine, clip_per_tensor
from simpool.train.recipe import CrossEntropyRecipe, Loop
from simpool.train.run import RunFolder
from simpool.train.schedule import Schedule


class LinearRecipe(CrossEntropyRecipe):
    """:class:`CrossEntropyRecipe` with its own SGD (built once, at ``lr``) and ``extra`` Parts fields."""

    def __init__(self, model, micro, lr=0.5, **extra):
        super().__init__(model, None, micro, **extra)
        self.lr, self.extra = lr, extra

    def build(self, info):
        self.optimizer = self.optimizer or torch.optim.SGD(self.model.parameters(), lr=self.lr)
        self.parts.update(self.extra)
        return super().build(info)


def pairs(*parts):
    """The given ``(x, y)`` pairs as micro-batches with no skipped image."""
    return [(x, y, 0) for x, y in parts]


def quiet(**settings) -> Loop:
    return Loop(progress=False, **settings)


def test_two_accumulated_micro_batches_make_the_update_of_the_full_batch():
    # SGD without momentum: the update is lr x gradient, and the gradient of the mean loss over 8 samples is
    # the mean of the two halves' mean-loss gradients, which is what loss / accum_steps accumulates
    torch.manual_seed(0)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    full = nn.Linear(6, 3)
    halves, initial = copy.deepcopy(full), copy.deepcopy(full)
    Engine(LinearRecipe(full, pairs((x, y)), updates_per_epoch=1), quiet()).run()
    engine = Engine(
        LinearRecipe(halves, pairs((x[:4], y[:4]), (x[4:], y[4:])), updates_per_epoch=1), quiet(accum_steps=2)
    )
    row = engine.run()
    assert engine.counters.update == 1
    for a, b in zip(full.parameters(), halves.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    # the logged loss is the sample-weighted mean of the micro-batch losses: the full batch's mean loss
    with torch.no_grad():
        assert row["train_loss"] == pytest.approx(float(F.cross_entropy(initial(x), y)), rel=1e-6)


def test_an_empty_micro_batch_counts_its_skipped_images_and_adds_nothing():
    torch.manual_seed(0)
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    model = nn.Linear(6, 3)
    reference = copy.deepcopy(model)
    micro = [(x, y, 1), (torch.empty(0), torch.empty(0, dtype=torch.long), 5)]
    engine = Engine(LinearRecipe(model, micro, lr=0.1, updates_per_epoch=1), quiet(accum_steps=2))
    row = engine.run()
    assert row["skipped"] == 6 and engine.counters.update == 1
    # only the readable micro-batch's gradient, divided by accum_steps
    loss = F.cross_entropy(reference(x), y) / 2
    loss.backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.1 * p.grad
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_per_update_and_per_epoch_schedules():
    model = nn.Linear(2, 2)
    x, y = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    recipe = LinearRecipe(model, pairs((x, y), (x, y), (x, y)), lr=1.0, updates_per_epoch=3)
    recipe.optimizer = optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    recipe.extra = {"schedule": Schedule(torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step))}
    Engine(recipe, quiet()).run()
    assert optimizer.param_groups[0]["lr"] == 0.5**3  # stepped after each of the 3 updates
    recipe = LinearRecipe(model, pairs((x, y), (x, y)), lr=1.0, epochs=2, updates_per_epoch=2)
    recipe.optimizer = optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    per_epoch = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.1**epoch)
    recipe.extra = {"schedule": Schedule(per_epoch, on="epoch")}
    Engine(recipe, quiet()).run()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # stepped after each of the 2 epochs


def test_a_timm_schedule_is_set_to_its_position_and_a_torch_one_stepped():
    from timm.scheduler import CosineLRScheduler

    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    timm_schedule = Schedule(CosineLRScheduler(optimizer, t_initial=10, t_in_epochs=False), on="update")
    timm_schedule.resume(update=5, epoch=0)  # half-way down the cosine from 1 to 0
    assert timm_schedule.positional and optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    torch_schedule = Schedule(torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5), on="update")
    torch_schedule.resume(update=5, epoch=0)  # a torch scheduler resumes from its own state: left as it is
    assert not torch_schedule.positional and optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="valid: update, epoch"):
        Schedule(None, on="step")


class Recording(LinearRecipe):
    """Writes down each call the engine makes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def step(self, model, x, y, weight):
        self.calls.append("step")
        return super().step(model, x, y, weight)

    def before_update(self, update):
        self.calls.append(f"before {update}")

    def before_optimizer_step(self):
        self.calls.append("pre-step")

    def after_update(self, update):
        self.calls.append(f"after {update}")

    def end_epoch(self, epoch, row, model):
        self.calls.append(f"end {epoch}")
        row["extra"] = 7.0

    def epoch_line(self, row):
        return f"epoch {row['epoch']} extra {row['extra']}"


def test_hooks_run_in_order_around_each_update(capsys):
    x, y = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    recipe = Recording(nn.Linear(2, 2), pairs(*[(x, y)] * 4), lr=0.1, updates_per_epoch=2)
    seen = []
    engine = Engine(recipe, quiet(accum_steps=2))
    engine.update_hooks = (lambda engine: seen.append(engine.counters.update),)  # a test's injected hook
    row = engine.run()
    first, second = (
        ["before 0", "step", "step", "pre-step", "after 1"],
        ["before 1", "step", "step", "pre-step", "after 2"],
    )
    assert recipe.calls == first + second + ["end 0"] and seen == [1, 2]
    assert row["extra"] == 7.0 and capsys.readouterr().out == "epoch 0 extra 7.0\n"


def test_a_non_finite_loss_stops_the_run_at_the_log_interval():
    x, y = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    seen = []

    class Diverging(LinearRecipe):
        def step(self, model, a, b, weight):
            seen.append(1)
            loss = super().step(model, a, b, weight)[0]
            return (loss * float("nan") if len(seen) == 2 else loss), len(b)

    engine = Engine(Diverging(nn.Linear(2, 2), pairs(*[(x, y)] * 5), lr=0.1, updates_per_epoch=5), quiet(log_every=3))
    with pytest.raises(FloatingPointError, match="update 3"):
        engine.run()
    assert len(seen) == 3  # not read at updates 1 and 2: no host sync between log intervals


def test_clip_modes():
    model = nn.Linear(2, 1, bias=False)
    model.weight.grad = torch.tensor([[3.0, 4.0]])  # norm 5
    CLIP_MODES["norm"](model, 1.0)
    torch.testing.assert_close(model.weight.grad, torch.tensor([[0.6, 0.8]]), rtol=1e-5, atol=1e-6)
    two = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False))
    two[0].weight.grad, two[1].weight.grad = torch.tensor([[10.0]]), torch.tensor([[0.5]])
    clip_per_tensor(two, 1.0)  # each tensor on its own: the small one is left as it is
    assert two[0].weight.grad.item() == pytest.approx(1.0, rel=1e-5) and two[1].weight.grad.item() == 0.5
    with pytest.raises(ValueError, match="valid modes: norm, per_tensor"):
        Engine(LinearRecipe(model, [], clip_mode="agc"), quiet()).run()


def test_resumed_epoch_loss_averages_the_whole_epoch(tmp_path):
    # stopped after 2 of 4 updates, then resumed: the epoch's train_loss is the uninterrupted run's,
    # not the mean over the 2 updates after the resume (the running sums are in last.pt)
    torch.manual_seed(0)
    micro = pairs(*[(torch.randn(4, 6), torch.randint(0, 3, (4,))) for _ in range(4)])

    def run(folder: Path, max_updates: int = 0):
        torch.manual_seed(1)
        recipe = LinearRecipe(nn.Linear(6, 3), micro, lr=0.1, updates_per_epoch=4)
        return Engine(recipe, quiet(max_updates=max_updates), folder=RunFolder(folder)).run()

    whole = run(tmp_path / "whole")
    assert run(tmp_path / "parts", max_updates=2) == {"epoch": 0, "update": 2}
    resumed = run(tmp_path / "parts")
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-12)
    assert resumed["update"] == 4


@pytest.mark.slow
def test_compile_wraps_after_ddp(tmp_path, torchrun):
    """Two gloo processes: compile wraps DDP (not the reverse), so all-reduce still overlaps the backward."""
    script = tmp_path / "wrap.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys, torch
            from torch import nn
            from simpool.train.distributed import cleanup, init_distributed
            from simpool.train.engine import Engine
            from simpool.train.recipe import CrossEntropyRecipe, Loop, Parts, Recipe
            class Conv(Recipe):
                def build(self, info):
                    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
                    return Parts(model, torch.optim.SGD(model.parameters(), lr=0.1))
            def main():  # DDP inside a function: gone before cleanup (see distributed.cleanup)
                info = init_distributed("cpu")
                engine = Engine(Conv(), Loop(compile=True, progress=False), info)
                engine.build()
                wrapped = engine.wrap()
                result = {"outer": type(wrapped).__name__, "inner": type(wrapped._orig_mod).__name__}
                if info.rank == 0:
                    print(json.dumps(result))
            main()
            cleanup()
            """
        )
    )
    result = torchrun(script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "outer": "OptimizedModule",
        "inner": "DistributedDataParallel",
    }


def test_sync_batchnorm_is_refused_off_cuda_and_a_no_op_in_one_process():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    two_cpu_ranks = DistInfo(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="SyncBatchNorm runs on CUDA devices only"):
        Engine(LinearRecipe(model, []), quiet(sync_batchnorm=True), two_cpu_ranks)
    engine = Engine(LinearRecipe(model, []), quiet(sync_batchnorm=True))
    engine.build()
    assert engine.wrap() is model and isinstance(model[1], nn.BatchNorm2d)


@pytest.mark.slow
def test_a_rank_whose_micro_batch_is_empty_still_takes_part(tmp_path, torchrun):
    """Rank 1's second micro-batch is all unreadable: the ranks neither hang nor fall out of step, rank 1's
    stand-in adds nothing, and both end with the weights of one process training on the readable samples.
    Also: shards of different sizes gathered in rank order (the k-NN monitor's features)."""
    script = tmp_path / "empty.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys, torch
            import torch.nn.functional as F
            from torch import nn
            from simpool.train.distributed import all_gather_rows, cleanup, init_distributed
            from simpool.train.engine import Engine
            from simpool.train.recipe import CrossEntropyRecipe, Loop, Parts, Recipe
            class Shard(Recipe):
                def __init__(self, model, micro):
                    self.model, self.micro = model, micro
                def build(self, info):
                    return Parts(self.model, torch.optim.SGD(self.model.parameters(), lr=0.5), 1, 2)
                def batches(self, epoch, start):
                    return iter(self.micro)
                def step(self, model, a, b, weight):
                    return F.cross_entropy(model(a), b), len(b)
            def main():  # DDP inside a function: gone before cleanup (see distributed.cleanup)
                info = init_distributed("cpu")
                torch.manual_seed(0)
                x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
                model = nn.Linear(6, 3)
                empty = (torch.empty(0), torch.empty(0, dtype=torch.long), 2)
                mine = [(x[:2], y[:2], 0), (x[2:], y[2:], 0)] if info.rank == 0 else [(x[:2], y[:2], 0), empty]
                engine = Engine(Shard(model, mine), Loop(progress=False), info)
                row = engine.run()
                out = {"weight": model.weight.tolist(), "skipped": row["skipped"], "update": engine.counters.update}
                shard = torch.full((info.rank + 1, 2), float(info.rank))  # unequal shards: 1 row, then 2
                out["gathered"] = all_gather_rows(shard).tolist()
                with open(f"{sys.argv[1]}/rank{info.rank}.json", "w") as file:
                    json.dump(out, file)
            main()
            cleanup()
            """
        )
    )
    result = torchrun(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0]["skipped"] == 2 and lines[0]["update"] == 2
    assert lines[0]["gathered"] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]  # every rank's rows, in rank order
    # one process: update 1 averages the two ranks' gradients of x[:2]; update 2 averages rank 0's gradient
    # of x[2:] with rank 1's zero stand-in (DDP divides by the world size)
    torch.manual_seed(0)
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    model = nn.Linear(6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for rows, scale in ((slice(0, 2), 1.0), (slice(2, 4), 0.5)):
        (F.cross_entropy(model(x[rows]), y[rows]) * scale).backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.testing.assert_close(torch.tensor(lines[0]["weight"]), model.weight.detach(), rtol=1e-5, atol=1e-6)


def test_without_info_the_engine_runs_on_the_models_device():
    engine = Engine(LinearRecipe(nn.Linear(2, 2), []), quiet())
    engine.build()
    assert engine.info == DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="amp must be one of"):
        Engine(LinearRecipe(nn.Linear(2, 2), []), quiet(amp="fp8"))


def test_amp_auto_is_none_on_the_cpu_and_the_scaler_follows_fp16():
    from simpool.train.validation import resolve_amp

    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) == "none" and resolve_amp("bf16", cpu) == "bf16"
    assert Engine(LinearRecipe(nn.Linear(2, 2), []), quiet(amp="auto")).scaler is None
    assert Engine(LinearRecipe(nn.Linear(2, 2), []), quiet(amp="fp16")).scaler is not None


def test_loop_settings_come_from_a_train_section():
    from simpool.train.config import LoopConfig

    train = LoopConfig(amp="bf16", log_every=7, max_updates=3, resume=False, seed=5)
    loop = Loop.from_config(train, accum_steps=2)
    assert (loop.amp, loop.log_every, loop.max_updates, loop.resume, loop.seed) == ("bf16", 7, 3, False, 5)
    assert loop.accum_steps == 2 and not loop.compile
    with pytest.raises(ValueError, match="accum_steps must be at least 1"):
        Loop(accum_steps=0)
