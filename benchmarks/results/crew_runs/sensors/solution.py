def decode_frame(frame: str) -> tuple[float, int]:
    if len(frame) != 10:
        raise ValueError("Invalid frame length or header")
    header = int(frame[0], 16)
    if header != 0xA5:
        raise ValueError("Invalid frame length or header")
    temp = int(frame[1:3], 16) * 0.1
    humidity = int(frame[3:], 16)
    if humidity > 100:
        raise ValueError("Humidity above 100")
    checksum = header ^ int(frame[1], 16) ^ int(frame[2], 16)
    if checksum != 0:
        raise ValueError("Invalid checksum")
    return temp, humidity
