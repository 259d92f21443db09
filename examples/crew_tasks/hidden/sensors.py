import pytest
from solution import decode_frame

assert decode_frame("A500EB2DC6") == (23.5, 45)
assert decode_frame("a500eb2dc6") == (23.5, 45)
# -10.0 C: 0xFF9C; humidity 100 (0x64); checksum 0xFF ^ 0x9C ^ 0x64 = 0x07
assert decode_frame("A5FF9C6407") == (-10.0, 100)
for bad in ("A500EB2DC7", "B500EB2DC6", "A500EB2D", "A500EB65" + format(0x00 ^ 0xEB ^ 0x65, "02X")):
    with pytest.raises(ValueError):
        decode_frame(bad)
