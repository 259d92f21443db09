import pytest

from solution import shipping_cost

@pytest.mark.parametrize("weight, zone, expected", [
    (1, 'domestic', 420),
    (2, 'domestic', 650),
    (3.2, 'domestic', 765),
    (29, 'domestic', 875),
    (1, 'eu', 528),
    (2, 'eu', 756),
    (3.2, 'eu', 876),
    (29, 'eu', 1092),
    (1, 'world', 652),
    (2, 'world', 874),
    (3.2, 'world', 1094),
    (29, 'world', 1320),
    (0, 'domestic', 420),
    (-1, 'domestic', 420),
    (31, 'domestic', 875),
    (1, 'invalid', ValueError("Invalid zone."))  # Fixed expected value for invalid zone
])
def test_shipping_cost(weight, zone, expected):
    if isinstance(expected, pytest.raises):
        with pytest.raises(expected):
            shipping_cost(weight, zone)
    else:
        assert shipping_cost(weight, zone) == expected
