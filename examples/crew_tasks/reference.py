"""Reference solutions of the five crew tasks (written by hand from ``docs/``; never ingested,
never shown to a crew). The checker tests run them to prove each hidden checker passes right
code, and ``benchmarks/stated_examples.py`` grades the examples a model listed against them."""

REFERENCE = {
    "invoices": '''
def invoice_number(year, sequence):
    if not 1 <= sequence <= 99999:
        raise ValueError("sequence out of range")
    seq = f"{sequence:05d}"
    return f"KF-{year}-{seq}-{chr(65 + sum(map(int, seq)) % 26)}"
''',
    "parcels": '''
import math
def shipping_cost(weight_kg, zone):
    zones = {"domestic": 1.0, "eu": 1.6, "world": 2.3}
    if zone not in zones or weight_kg <= 0 or weight_kg > 30:
        raise ValueError("refused")
    extra = max(0, math.ceil(weight_kg - 2 - 1e-9))
    return round((4.20 + 1.15 * extra) * zones[zone], 2)
''',
    "sensors": '''
def decode_frame(frame):
    if len(frame) != 10:
        raise ValueError("length")
    b = bytes.fromhex(frame)
    if b[0] != 0xA5 or b[3] > 100 or b[1] ^ b[2] ^ b[3] != b[4]:
        raise ValueError("bad frame")
    return int.from_bytes(b[1:3], "big", signed=True) / 10, b[3]
''',
    "accounts": '''
import re
def valid_username(name):
    if name in {"admin", "root", "kestrel", "support"}:
        return False
    return bool(re.fullmatch(r"[a-z](?:[a-z0-9]|[-_](?=[a-z0-9])){2,15}", name))
''',
    "kivu_calendar": '''
def kivu_days(year):
    if year < 1:
        raise ValueError("no such year")
    leap = year % 5 == 0 and (year % 40 != 0 or year % 200 == 0)
    return 371 if leap else 364
''',
}
