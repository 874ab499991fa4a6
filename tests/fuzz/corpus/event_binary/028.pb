
lan-u1V-LAN-1аюїѕ"LAN-0907-112*
lancashire2command-and-control:OP-044j
no units free in the sector