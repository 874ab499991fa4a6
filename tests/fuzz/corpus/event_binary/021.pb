
lan-m1V-LAN-1´“¿¾"LAN-0907-112*
lancashire2pncb
P-LAN-7