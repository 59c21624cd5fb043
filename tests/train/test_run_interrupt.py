"""What a Ctrl-C of a training run says: resume only when the run folder holds a ``last.pt`` to resume from."""

from __future__ import annotations

from simpool.cli.main import main
from simpool.train.engine import Engine
from tests.train.conftest import overrides


def _interrupt_at(update: int):
    def hook(engine) -> None:
        if engine.counters.update == update:
            raise KeyboardInterrupt

    return hook


def test_ctrl_c_before_any_checkpoint_says_to_start_afresh_and_after_one_to_resume(
    tiny_data, tmp_path, capsys, monkeypatch
):
    args = overrides(tiny_data, tmp_path / "runs", train__batch_size=8, train__progress="false")
    folder = tmp_path / "runs" / "run"
    monkeypatch.setattr(Engine, "update_hooks", (_interrupt_at(1),))
    assert main(["train", *args, "train.epochs=1"]) == 130
    # before: "run the same command again to resume ... from its last checkpoint", with no last.pt to resume from
    assert capsys.readouterr().err.strip().splitlines()[-2:] == [
        f"interrupted before {folder} saved a checkpoint: run the same command again to start afresh",
        "simpool train: interrupted",
    ]
    assert not (folder / "last.pt").exists()
    monkeypatch.setattr(Engine, "update_hooks", ())
    assert main(["train", *args, "train.epochs=1"]) == 0  # one epoch: last.pt written
    monkeypatch.setattr(Engine, "update_hooks", (_interrupt_at(5),))  # in the second epoch (4 updates each)
    capsys.readouterr()
    assert main(["train", *args, "train.epochs=2"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-2] == (
        f"interrupted: run the same command again to resume {folder} from its last checkpoint (last.pt)"
    )


def test_a_run_without_a_folder_says_to_start_it_again():
    from simpool.train.run import RunFolder

    assert RunFolder.after_interrupt(None) == "interrupted: run the same command again to start it again"


def test_a_study_whose_arms_saved_a_state_says_to_resume(tmp_path):
    from simpool.train.run import RunFolder

    out = tmp_path / "demo"
    (out / "training" / "cls").mkdir(parents=True)
    assert RunFolder.after_interrupt(out).startswith("interrupted before")  # nothing saved yet
    (out / "training" / "cls" / "last.pt").write_bytes(b"")  # an arm's state (the demo's run_dir/training/<kind>)
    assert RunFolder.after_interrupt(out) == (
        f"interrupted: run the same command again to resume {out} from its last checkpoint (last.pt)"
    )
