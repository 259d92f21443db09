import pytest

def decode_frame(frame: str) -> tuple[float, int]:
    if len(frame) != 10:
        raise ValueError("Invalid frame length")
    
    header = frame[0]
    if header != "A5":
        raise ValueError("Invalid header")
    
    temp_tenths = int(frame[1:3], 16)
    humidity = int(frame[3:5], 16)  # Corrected from 3 to 5 for 2-byte humidity
    checksum = temp_tenths ^ (temp_tenths >> 8) ^ humidity
    if checksum != 0:
        raise ValueError("Invalid checksum")
    
    temperature = temp_tenths * 0.1
    return temperature, humidity

# Test cases
def test_decode_frame_valid():
    frame = "A500EB2D"
    expected_temperature = 23.5
    expected_humidity = 45
    assert decode_frame(frame) == (expected_temperature, expected_humidity)

def test_decode_frame_invalid_length():
    frame = "A500EB"
    with pytest.raises(ValueError):
        decode_frame(frame)

def test_decode_frame_invalid_header():
    frame = "A400EB2D"
    with pytest.raises(ValueError):
        decode_frame(frame)

def test_decode_frame_invalid_checksum():
    frame = "A500EB2C"
    with pytest.raises(ValueError):
        decode_frame(frame)

def test_decode_frame_out_of_range_humidity():
    frame = "A500EBFF"
    with pytest.raises(ValueError):
        decode_frame(frame)
