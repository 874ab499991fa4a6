
cam-g1V-CAM-1¸Ó†­"CAM-0112-387*cambridgeshire2command-and-control:OP-210Z