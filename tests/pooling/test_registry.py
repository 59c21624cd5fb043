"""The pool registry: a misspelt argument of any pool, or of an alias, is one line naming the valid ones."""

import pytest

from simpool.pooling import create_pool


@pytest.mark.parametrize(
    "name, key, message",
    [
        ("aim", "num_heads", "pool 'aim' (pool_kwargs) takes no argument 'num_headsx'; valid: num_heads, "),
        ("siglip", "latent_len", "pool 'siglip' (pool_kwargs) takes no argument 'latent_lenx'; valid: "),
    ],
)
def test_a_misspelt_argument_names_the_valid_ones(name, key, message):
    with pytest.raises(ValueError) as error:
        create_pool(name, 64, **{key + "x": 2})
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert f" {key}," in str(error.value)
    create_pool(name, 64, **{key: 2})  # spelt right, the same value builds


def test_a_misspelt_argument_is_also_a_type_error_for_code_that_falls_back():
    # code that tries a keyword and falls back without it catches TypeError, as it would from the constructor itself
    with pytest.raises(TypeError):
        create_pool("simpool", 64, gama=2.0)
