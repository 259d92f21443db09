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
