"""One flag for one concept in every command and nested command (issue 15's vocabulary).

The concepts and their canonical flag live here; a command that spells a concept another way fails.
"""

from __future__ import annotations

from simpool.cli.main import walk

# concept: (the flag every command uses, the spellings that must not appear)
CONCEPTS = {
    "dataset root": ("--data", ("--data-path", "--data-root", "--root", "--dataset-root")),
    "output folder or file": ("--out", ("--output", "--output-dir", "--json")),
    "timm model name": ("--model", ("--arch", "--model-name")),
    "pool": ("--pool", ("--pooling", "--global-pool")),
    "pool arguments": ("--pool-kwargs", ("--pool-arg", "--pool-args")),
    "timm model arguments": ("--model-kwargs", ("--model-arg", "--model-args", "--timm-kwargs")),
    "weights": ("--checkpoint", ("--weights", "--ckpt", "--in", "--pretrained")),
    "image size": ("--img-size", ("--image-size", "--imsize", "--input-size")),
    "batch size": ("--batch-size", ("--batch", "--bs")),
    "loader workers": ("--workers", ("--num-workers", "-j")),
    "device": ("--device", ("--gpu", "--cuda")),
    "seed": ("--seed", ("--random-seed",)),
    "progress bars": ("--no-progress", ("--quiet", "--progress")),
}
# the commands that train take their config overrides as positional key=value words, never as an option
OVERRIDE_COMMANDS = ("simpool train", "simpool train-dino", "simpool eval finetune", "simpool probe", "simpool demo")
OVERRIDE_OPTIONS = ("--set", "--override", "--overrides")


def flags_of_every_command() -> dict[str, set[str]]:
    return {prog: {o for action in parser._actions for o in action.option_strings} for prog, parser in walk()}


def test_every_concept_has_one_spelling():
    commands = flags_of_every_command()
    assert len(commands) >= 19  # every command and nested command was walked
    wrong = [
        f"{prog}: {flag} (use {canonical} for the {concept})"
        for prog, flags in commands.items()
        for concept, (canonical, aliases) in CONCEPTS.items()
        for flag in aliases
        if flag in flags
    ]
    assert not wrong, "\n".join(wrong)


def test_the_model_commands_share_the_model_group():
    # every command that builds a model from --model takes the whole group, spelled alike
    group = {"--model", "--pool", "--pool-kwargs", "--model-kwargs", "--checkpoint"}
    exempt = ("tournament", "resources", "export")
    partial = [
        f"{prog}: missing {sorted(group - flags)}"
        for prog, flags in flags_of_every_command().items()
        if "--model" in flags and not prog.endswith(exempt) and group - flags
    ]
    assert not partial, "\n".join(partial)


def test_help_shows_each_default_once():
    # the formatter adds "(default: ...)" to every option's help: a help text that says it too shows it twice
    twice = [
        f"{prog} {action.option_strings[0]}: {action.help}"
        for prog, parser in walk()
        for action in parser._actions
        if action.option_strings and action.help and "default:" in action.help and "%(default)" not in action.help
    ]
    assert not twice, "\n".join(twice)


def defaults_of(flag: str) -> dict[str, object]:
    """``{command: default}`` of ``flag`` in every command that has it."""
    return {
        prog: action.default for prog, parser in walk() for action in parser._actions if flag in action.option_strings
    }


def test_workers_default_to_at_most_the_cpu_count_in_every_command(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # a 2-core machine: 4 workers would warn
    defaults = defaults_of("--workers")
    assert "simpool validate" in defaults and "simpool eval knn" in defaults
    assert {prog: d for prog, d in defaults.items() if d != 2} == {}


# resources builds no weights: its --num-classes is the classifier counted (the paper's Table 8: ImageNet's 1000)
NUM_CLASSES_EXEMPT = {"simpool resources": 1000}


def test_num_classes_defaults_alike_in_every_command():
    defaults = defaults_of("--num-classes")
    assert "simpool eval knn" in defaults and "simpool eval localization" in defaults
    assert {p: d for p, d in defaults.items() if p not in NUM_CLASSES_EXEMPT} == dict.fromkeys(
        set(defaults) - set(NUM_CLASSES_EXEMPT)
    )  # None: the checkpoint's classifier
    assert {p: defaults[p] for p in NUM_CLASSES_EXEMPT} == NUM_CLASSES_EXEMPT


def test_the_commands_that_train_take_positional_key_value_overrides():
    parsers = dict(walk())
    positional = {
        prog: [a for a in parser._actions if a.dest == "overrides" and not a.option_strings and a.nargs == "*"]
        for prog, parser in parsers.items()
    }
    assert [prog for prog in OVERRIDE_COMMANDS if not positional[prog]] == []
    as_options = [
        f"{prog}: {flag}"
        for prog, parser in parsers.items()
        for action in parser._actions
        for flag in action.option_strings
        if flag in OVERRIDE_OPTIONS
    ]
    assert as_options == [], "overrides are positional key=value words"
    args = parsers["simpool train"].parse_args(["--config", "r.yaml", "optim.lr=1e-3", "model.pool_kwargs={gamma: 2}"])
    assert args.overrides == ["optim.lr=1e-3", "model.pool_kwargs={gamma: 2}"] and args.config == "r.yaml"
