
nyp-a1-rV-NYP-AðöÁ–"
NYP-0110-1*north-yorkshire2recordsš