
lan-k1V-LAN-1À À¾"LAN-0907-112*
lancashire2vigil-console:	INSP-0907Ò 
al-9241ac18fe422ff0	INSP-0907