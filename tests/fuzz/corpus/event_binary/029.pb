
lan-d1V-LAN-1»ê¿æ"LAN-0907-112*
lancashire2command-and-control:OP-044ä4
	LAN-ARR-1'no units; to be picked up by late shift