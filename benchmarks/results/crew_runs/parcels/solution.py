def shipping_cost(weight_kg: float, zone: str) -> float:
    if weight_kg <= 0:
        raise ValueError("Weight of parcel must be greater than 0.")
    elif weight_kg > 30:
        raise ValueError("Parcel cannot be heavier than 30 kg.")
    else:
        base_price = 4.20
        multiplier = 1.0 if zone == 'domestic' else 1.6 if zone == 'eu' else 2.3
        price = base_price + (weight_kg - 2) * multiplier
        return round(price * 100)

def test_shipping_cost():
    assert shipping_cost(2, 'domestic') == 650
    assert shipping_cost(3.2, 'domestic') == 650
    assert shipping_cost(4, 'domestic') == 780
    assert shipping_cost(1.9, 'domestic') == 420
    assert shipping_cost(25, 'domestic') == 650
    with pytest.raises(ValueError):
        shipping_cost(-1, 'domestic')
    with pytest.raises(ValueError):
        shipping_cost(31, 'domestic')
    with pytest.raises(ValueError):
        shipping_cost(0, 'domestic')
