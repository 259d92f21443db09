import pytest

from solution import decode_frame

def test_decode_frame_with_valid_input():
    assert decode_frame('A500EB2D') == (23.5, 45)
    assert decode_frame('A500EB2DC6') == (23.5, 45)

def test_decode_frame_with_invalid_length():
    with pytest.raises(ValueError):
        decode_frame('A500EB2')

def test_decode_frame_with_invalid_header():
    with pytest.raises(ValueError):
        decode_frame('B500EB2D')

def test_decode_frame_with_invalid_humidity():
    with pytest.raises(ValueError):
        decode_frame('A500EB2D1')

def test_decode_frame_with_invalid_checksum():
    with pytest.raises(ValueError):
        decode_frame('A500EB2D3A')
