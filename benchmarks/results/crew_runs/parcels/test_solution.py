import pytest
from solution import shipping_cost

def test_shipping_cost():
    assert shipping_cost(1.0, "domestic") == 4.20
    assert shipping_cost(2.0, "domestic") == 6.50
    assert shipping_cost(3.2, "domestic") == 8.75
    assert shipping_cost(30.0, "domestic") == 12.90
    
    with pytest.raises(ValueError):
        shipping_cost(-1.0, "domestic")
    
    with pytest.raises(ValueError):
        shipping_cost(0.0, "domestic")
    
    with pytest.raises(ValueError):
        shipping_cost(31.0, "domestic")
    
    assert shipping_cost(1.0, "eu") == 6.72
    assert shipping_cost(2.0, "eu") == 8.96
    assert shipping_cost(3.2, "eu") == 11.52
    assert shipping_cost(30.0, "eu") == 14.88
    
    with pytest.raises(ValueError):
        shipping_cost(-1.0, "eu")
    
    with pytest.raises(ValueError):
        shipping_cost(0.0, "eu")
    
    with pytest.raises(ValueError):
        shipping_cost(31.0, "eu")
    
    assert shipping_cost(1.0, "world") == 9.65
    assert shipping_cost(2.0, "world") == 11.90
    assert shipping_cost(3.2, "world") == 14.88
    assert shipping_cost(30.0, "world") == 17.22
    
    with pytest.raises(ValueError):
        shipping_cost(-1.0, "world")
    
    with pytest.raises(ValueError):
        shipping_cost(0.0, "world")
    
    with pytest.raises(ValueError):
        shipping_cost(31.0, "world")
