import pytest
from solution import decode_frame


def test_decode_frame():
    assert decode_frame('A500EB2D') == (23.5, 45)
    with pytest.raises(ValueError):
        decode_frame('A500EB2E')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D0')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D012')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D0123')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D012345')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D0123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D012345678')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D0123456789')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D012345678901')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D0123456789012')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D012345678901234')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D0123456789012345')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises(ValueError):
        decode_frame('A500EB2D01234567890123456')
    with pytest.raises