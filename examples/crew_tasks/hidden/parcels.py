import pytest
from solution import shipping_cost

assert shipping_cost(1.0, "domestic") == 4.20
assert shipping_cost(2.0, "domestic") == 4.20
assert shipping_cost(3.2, "domestic") == 6.50
assert shipping_cost(3.0, "eu") == round(5.35 * 1.6, 2)
assert shipping_cost(30, "world") == round((4.20 + 28 * 1.15) * 2.3, 2)
for weight, zone in ((31, "domestic"), (0, "eu"), (-1, "eu"), (1, "mars")):
    with pytest.raises(ValueError):
        shipping_cost(weight, zone)
