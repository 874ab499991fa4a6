
cam-ua1V-CAM-1Ù”Ü≠"CAM-0112-387*cambridgeshire2command-and-controlr
CA-14