
cam-ar1V-CAM-1ÄÙ†­"CAM-0112-387*cambridgeshire2command-and-controlz
CA-14