"""A YAML recipe a person wrote wrong: one line naming the file and the line (or the ``base:`` cycle), exit code 2."""

from __future__ import annotations

import pytest

from simpool.cli.main import main


@pytest.mark.parametrize(
    "text, message",
    [
        # before: the last value won silently
        ("optim:\n  lr: 0.1\n  lr: 0.2\n", "{path}: line 3: key 'lr' repeats the one on line 2; give each key once"),
        ("optim: {lr: 0.1, lr: 0.2}\n", "{path}: line 1: key 'lr' repeats the one on line 1; give each key once"),
        # before: a yaml traceback naming "<unicode string>"
        ("optim:\n  lr: [0.1\ntrain:\n", "{path}: line 3, column 6: expected ',' or ']', but got ':' (malformed YAML)"),
        (
            "optim:\n\tlr: 0.1\n",
            "{path}: line 2, column 1: found character '\\t' that cannot start any token (malformed YAML)",
        ),
    ],
)
def test_a_malformed_recipe_names_its_file_and_line(tmp_path, capsys, text, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path), "--print-config"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "simpool train: error: " + message.format(path=path) and not captured.out


def test_base_recipes_that_include_each_other_are_named(tmp_path, capsys):
    # before: RecursionError
    (tmp_path / "a.yaml").write_text("base: b.yaml\noptim:\n  lr: 0.1\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    assert main(["train", "--config", str(tmp_path / "a.yaml"), "--print-config"]) == 2
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert capsys.readouterr().err.strip() == (
        f"simpool train: error: base: recipes include each other ({a} -> {b} -> {a}); remove one base: key"
    )


def test_a_repeated_key_in_an_override_value_is_refused(capsys):
    assert main(["train", "--print-config", "model.pool_kwargs={gamma: 1, gamma: 2}"]) == 2
    assert capsys.readouterr().err.strip() == (
        "simpool train: error: override model.pool_kwargs: line 1: key 'gamma' repeats the one on line 1; "
        "give each key once"
    )


def test_a_base_chain_still_resolves(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("optim:\n  lr: 0.1\n  weight_decay: 0.5\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\noptim:\n  lr: 0.2\n")
    assert main(["train", "--config", str(tmp_path / "child.yaml"), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "  lr: 0.2\n" in out and "  weight_decay: 0.5\n" in out
