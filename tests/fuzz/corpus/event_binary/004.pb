
cam-a1V-CAM-1άε†­"CAM-0112-387*cambridgeshire2command-and-control:PC-5120‚
	CAM-ARR-9P-CAM-2