
hmf-q3V-HMF-3†„”ì*
lancashire2ppu∫
DVDS-LAN-2205P-HMF-3