"""SimPool's ``min_over`` rule on a hand-made tensor: the minimum of each group and where its gradient goes."""

import pytest
import torch

from simpool.pooling.min_over import SHIFT_EPS, ShiftByMin, add_min_grad, argmin, value_min

# (B=2 images, N=2 locations, C=2 channels); image 0's minimum 0 at (n=1, c=0), image 1's -1 at (n=1, c=1)
VALUES = torch.tensor([[[3.0, 1.0], [0.0, 5.0]], [[2.0, 4.0], [6.0, -1.0]]])
MINIMA = {
    "sample": [[[0.0]], [[-1.0]]],  # per image: (B, 1, 1)
    "batch": [[[-1.0]]],  # one for the batch: (1, 1, 1)
    "channel": [[[0.0, 1.0]], [[2.0, -1.0]]],  # per image and channel, over locations: (B, 1, C)
}


@pytest.mark.parametrize("min_over", MINIMA)
def test_minimum_of_each_group_in_both_layouts(min_over):
    expected = torch.tensor(MINIMA[min_over])
    torch.testing.assert_close(value_min(VALUES, min_over), expected)
    torch.testing.assert_close(argmin(VALUES, min_over)[0], expected)
    # a map's (B, C, N) layout: the same groups, the minimum transposed
    as_map = VALUES.transpose(1, 2).contiguous()
    torch.testing.assert_close(value_min(as_map, min_over, channel_dim=1), expected.transpose(1, 2))
    torch.testing.assert_close(argmin(as_map, min_over, channel_dim=1)[0], expected.transpose(1, 2))


def test_min_grad_goes_to_the_minimum_of_each_group():
    grad = torch.ones(2, 2, 2)
    # sample: the 4 ones of an image, through - min Y, leave its minimum's position
    expected = torch.ones(2, 2, 2)
    expected[0, 1, 0] -= 4
    expected[1, 1, 1] -= 4
    torch.testing.assert_close(add_min_grad(grad, argmin(VALUES, "sample")[1], "sample"), expected)
    # batch: the 8 ones of the batch leave the batch minimum, image 1's
    expected = torch.ones(2, 2, 2)
    expected[1, 1, 1] -= 8
    torch.testing.assert_close(add_min_grad(grad, argmin(VALUES, "batch")[1], "batch"), expected)
    # channel: the 2 ones of an image's channel leave the location of that channel's minimum
    expected = torch.ones(2, 2, 2)
    expected[0, 1, 0] -= 2  # image 0, channel 0: minimum 0 at location 1
    expected[0, 0, 1] -= 2  # image 0, channel 1: minimum 1 at location 0
    expected[1, 0, 0] -= 2
    expected[1, 1, 1] -= 2
    torch.testing.assert_close(add_min_grad(grad, argmin(VALUES, "channel")[1], "channel"), expected)
    assert torch.equal(grad, torch.ones(2, 2, 2))  # left as it was; in_place=True writes into it
    in_place = add_min_grad(grad, argmin(VALUES, "channel")[1], "channel", in_place=True)
    assert in_place.data_ptr() == grad.data_ptr() and torch.equal(grad, expected)


@pytest.mark.parametrize("channel_dim", [1, 2])
@pytest.mark.parametrize("min_over", MINIMA)
def test_shift_by_min_is_the_shift_with_autograds_derivative_where_nothing_ties(min_over, channel_dim):
    values = torch.randn(2, 3, 4, dtype=torch.double, requires_grad=True)
    shifted = ShiftByMin.apply(values, min_over, channel_dim)
    reference = values - value_min(values, min_over, channel_dim=channel_dim) + SHIFT_EPS  # autograd's amin
    torch.testing.assert_close(shifted, reference)
    weights = torch.randn(2, 3, 4, dtype=torch.double)
    (grad,) = torch.autograd.grad((shifted * weights).sum(), values)
    (expected,) = torch.autograd.grad((reference * weights).sum(), values)
    torch.testing.assert_close(grad, expected)


def test_unknown_min_over_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"min_over must be one of \('sample', 'batch', 'channel'\), got 'image'"):
        value_min(VALUES, "image")
