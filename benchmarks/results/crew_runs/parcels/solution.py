from typing import Union

def shipping_cost(weight_kg: float, zone: str) -> float:
    if weight_kg <= 0 or weight_kg > 30:
        raise ValueError("Weight must be between 0 and 30 kg.")
    
    base_price = 4.20 if weight_kg <= 2 else 6.50
    
    multiplier = {
        'domestic': 1.0,
        'eu': 1.6,
        'world': 2.3
    }.get(zone, None)
    
    if multiplier is None:
        raise ValueError("Invalid zone.")
    
    additional_price = (weight_kg - 2) * 1.15 if weight_kg > 2 else 0
    
    total_price = base_price + additional_price
    
    return round(total_price * 100)
