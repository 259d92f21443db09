def decode_frame(frame: str) -> tuple[float, int]:
    if len(frame) != 5:
        raise ValueError("Invalid length")
    if frame[0] != "A":
        raise ValueError("Invalid header")
    temp_hex = frame[1:3]
    humidity_hex = frame[3]
    checksum_hex = frame[-1]
    temp_int = int(temp_hex, 16) / 10
    humidity_int = int(humidity_hex)
    if humidity_int > 100:
        raise ValueError("Humidity above 100")
    checksum = (int(frame[0]) + int(frame[1]) + int(frame[2])) % 256
    if checksum != int(checksum_hex):
        raise ValueError("Invalid checksum")
    return temp_int, humidity_int
