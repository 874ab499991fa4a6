
wil-k1V-WIL-1ð®² *	wiltshire2ppuÂ
DVDS-2023-0101