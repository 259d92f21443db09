def shipping_cost(weight_kg: float, zone: str) -> float:
    if weight_kg <= 0 or weight_kg > 30:
        raise ValueError("Weight must be between 0 and 30 kg")
    price = 4.20 + (weight_kg - 2) * 1.15
    if zone == 'eu':
        price *= 1.6
    elif zone == 'world':
        price *= 2.3
    return round(price, 2)
