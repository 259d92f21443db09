import pytest

from solution import shipping_cost

@pytest.mark.parametrize("weight_kg, zone, expected", [
    (2, 'domestic', 6.5),
    (3.2, 'eu', 10.2),
    (15, 'world', 34.1),
    (0, 'domestic', pytest.raises(ValueError)),
    (31, 'domestic', pytest.raises(ValueError))
])
def test_shipping_cost(weight_kg, zone, expected):
    with pytest.raises(ValueError) if isinstance(expected, Exception) else pytest.raises(Exception):
        shipping_cost(weight_kg, zone)
    assert shipping_cost(weight_kg, zone) == expected
