import pytest
import torch

from flowdist.testing import check_transform
from flowdist.transforms.permutation import PermutationTransform, ReverseTransform


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_permutation_properties_and_values(dtype):
    t = PermutationTransform([2, 0, 1])
    x = torch.tensor([[10.0, 20.0, 30.0]], dtype=dtype)
    assert torch.equal(t(x), torch.tensor([[30.0, 10.0, 20.0]], dtype=dtype))
    check_transform(t, torch.randn(4, 3, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channel_permutation_of_images(dtype):
    t = ReverseTransform(3, (3, 2, 2))
    x = torch.randn(2, 3, 2, 2, dtype=dtype)
    assert torch.equal(t(x), x.flip(-3))
    check_transform(t, x)


def test_random_permutation_is_seeded():
    a = PermutationTransform.random(10, generator=torch.Generator().manual_seed(1))
    b = PermutationTransform.random(10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.perm, b.perm)
    assert torch.equal(a.perm.sort().values, torch.arange(10))


def test_permutation_state_dict_round_trip():
    a = PermutationTransform.random(6, generator=torch.Generator().manual_seed(0))
    b = PermutationTransform(torch.arange(6))
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 6)
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0, 0, 1],), "permutation"),
        (([0.0, 1.0],), "integer"),
        (([1, 0], (3,)), "event_shape"),
    ],
)
def test_bad_permutations(args, match):
    with pytest.raises(ValueError, match=match):
        PermutationTransform(*args)


def test_bad_inputs():
    t = ReverseTransform(3)
    with pytest.raises(ValueError, match="x must have shape"):
        t(torch.randn(2, 4))
    with pytest.raises(TypeError, match="floating"):
        t(torch.ones(2, 3, dtype=torch.long))
