import pytest

from solution import shipping_cost

def test_stated_examples():
    assert shipping_cost(2, 'domestic') == pytest.approx(6.5)
    assert shipping_cost(3.2, 'domestic') == pytest.approx(6.5)
    assert shipping_cost(4, 'domestic') == pytest.approx(780)
    assert shipping_cost(1.9, 'domestic') == pytest.approx(420)
    assert shipping_cost(25, 'domestic') == pytest.approx(650)
    with pytest.raises(ValueError):
        shipping_cost(-1, 'domestic')
    with pytest.raises(ValueError):
        shipping_cost(31, 'domestic')
    with pytest.raises(ValueError):
        shipping_cost(0, 'domestic')

if __name__ == '__main__':
    pytest.main()
