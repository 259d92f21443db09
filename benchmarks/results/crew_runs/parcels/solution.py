def shipping_cost(weight_kg: float, zone: str) -> float:
    if weight_kg < 0 or weight_kg > 30:
        raise ValueError("Weight must be between 0 and 30 kg")
    
    if zone not in ["domestic", "eu", "world"]:
        raise ValueError("Invalid zone name")
    
    base_price = 4.20
    multiplier = 1.0
    
    if weight_kg > 2:
        base_price += (weight_kg - 2) * 1.15
    
    price = base_price * multiplier
    
    return round(price, 2)
