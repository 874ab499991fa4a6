
cam-c1V-CAM-1ภาญ"CAM-0112-387*cambridgeshire2command-and-control:OP-210R"P-CA